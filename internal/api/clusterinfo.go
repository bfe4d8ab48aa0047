package api

// KindClusterInformation is the ClusterInformation kind.
const KindClusterInformation = "ClusterInformation"

// ClusterInformation is the cluster-wide singleton "default".
type ClusterInformation struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       ClusterInformationSpec `json:"spec"`
}

// ClusterInformationSpec identifies the cluster and says whether it takes writes.
type ClusterInformationSpec struct {
	ClusterGUID    string `json:"clusterGUID,omitempty"`
	ClusterType    string `json:"clusterType,omitempty"`
	CalicoVersion  string `json:"calicoVersion,omitempty"`
	DatastoreReady *bool  `json:"datastoreReady,omitempty"`
	Variant        string `json:"variant,omitempty"`
}

// NewClusterInformation returns an empty ClusterInformation with its TypeMeta set.
func NewClusterInformation() *ClusterInformation {
	return &ClusterInformation{TypeMeta: TypeMeta{Kind: KindClusterInformation, APIVersion: APIVersion}}
}

// Ready reports datastoreReady, which defaults to true when unset.
func (c *ClusterInformation) Ready() bool {
	return c.Spec.DatastoreReady == nil || *c.Spec.DatastoreReady
}
