package api

import "fmt"

// KindKubeControllersConfiguration is the KubeControllersConfiguration kind.
const KindKubeControllersConfiguration = "KubeControllersConfiguration"

// KubeControllersConfiguration configures calico-kube-controllers; only
// the one named "default" exists (kubecontrollersconfigurations/default).
// This project stores and validates it; nothing here acts on it.
type KubeControllersConfiguration struct {
	TypeMeta
	ObjectMeta `json:"metadata"`
	Spec       KubeControllersConfigurationSpec   `json:"spec"`
	Status     KubeControllersConfigurationStatus `json:"status"`
}

// KubeControllersConfigurationSpec is the controllers' configuration.
type KubeControllersConfigurationSpec struct {
	LogSeverityScreen      string            `json:"logSeverityScreen,omitempty"`
	HealthChecks           string            `json:"healthChecks,omitempty"`
	EtcdV3CompactionPeriod *Duration         `json:"etcdV3CompactionPeriod,omitempty"`
	PrometheusMetricsPort  *int              `json:"prometheusMetricsPort,omitempty"`
	Controllers            ControllersConfig `json:"controllers"`
	DebugProfilePort       *int32            `json:"debugProfilePort,omitempty"`
}

// ControllersConfig enables and configures each controller (nil: disabled).
type ControllersConfig struct {
	Node             *NodeControllerConfig       `json:"node,omitempty"`
	Policy           *ReconcilerConfig           `json:"policy,omitempty"`
	WorkloadEndpoint *ReconcilerConfig           `json:"workloadEndpoint,omitempty"`
	ServiceAccount   *ReconcilerConfig           `json:"serviceAccount,omitempty"`
	Namespace        *ReconcilerConfig           `json:"namespace,omitempty"`
	LoadBalancer     *LoadBalancerControllerConf `json:"loadBalancer,omitempty"`
	Migration        *MigrationControllerConfig  `json:"policyMigration,omitempty"`
}

// NodeControllerConfig configures the node controller.
type NodeControllerConfig struct {
	ReconcilerPeriod *Duration               `json:"reconcilerPeriod,omitempty"`
	SyncLabels       string                  `json:"syncLabels,omitempty"`
	HostEndpoint     *AutoHostEndpointConfig `json:"hostEndpoint,omitempty"`
	LeakGracePeriod  *Duration               `json:"leakGracePeriod,omitempty"`
}

// AutoHostEndpointConfig configures automatic host endpoints.
type AutoHostEndpointConfig struct {
	AutoCreate                string                 `json:"autoCreate,omitempty"`
	CreateDefaultHostEndpoint string                 `json:"createDefaultHostEndpoint,omitempty"`
	Templates                 []AutoHostEndpointTmpl `json:"templates,omitempty"`
}

// AutoHostEndpointTmpl is a template for automatic host endpoints.
type AutoHostEndpointTmpl struct {
	GenerateName     string            `json:"generateName,omitempty"`
	InterfaceCIDRs   []string          `json:"interfaceCIDRs,omitempty"`
	InterfacePattern string            `json:"interfacePattern,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	NodeSelector     string            `json:"nodeSelector,omitempty"`
}

// ReconcilerConfig is the configuration of the policy, workload endpoint,
// service account and namespace controllers.
type ReconcilerConfig struct {
	ReconcilerPeriod *Duration `json:"reconcilerPeriod,omitempty"`
}

// LoadBalancerControllerConf configures the LoadBalancer controller.
type LoadBalancerControllerConf struct {
	AssignIPs string `json:"assignIPs,omitempty"`
}

// MigrationControllerConfig configures the policy name migrator.
type MigrationControllerConfig struct {
	PolicyNameMigrator string `json:"enabled,omitempty"`
}

// KubeControllersConfigurationStatus is what the controllers report running.
type KubeControllersConfigurationStatus struct {
	RunningConfig   *KubeControllersConfigurationSpec `json:"runningConfig,omitempty"`
	EnvironmentVars map[string]string                 `json:"environmentVars,omitempty"`
}

// NewKubeControllersConfiguration returns an empty one with its TypeMeta set.
func NewKubeControllersConfiguration() *KubeControllersConfiguration {
	return &KubeControllersConfiguration{TypeMeta: TypeMeta{Kind: KindKubeControllersConfiguration, APIVersion: APIVersion}}
}

// Validate checks the name (only "default", as upstream's client requires)
// and the enumerations and port ranges.
func (k *KubeControllersConfiguration) Validate() error {
	var es errs
	if k.Name != "default" {
		es.add(fieldErr("metadata.name", k.Name, "the only KubeControllersConfiguration is named \"default\""))
	}
	s := k.Spec
	if s.LogSeverityScreen != "" {
		es.add(oneOf("spec.logSeverityScreen", s.LogSeverityScreen, "None", "Debug", "Info", "Warning", "Error", "Fatal", "Panic"))
	}
	enabled := func(field, v string) {
		if v != "" {
			es.add(oneOf(field, v, "Enabled", "Disabled"))
		}
	}
	enabled("spec.healthChecks", s.HealthChecks)
	port := func(field string, v *int) {
		if v != nil && (*v < 0 || *v > 65535) {
			es.add(fieldErr(field, *v, "must be between 0 and 65535"))
		}
	}
	port("spec.prometheusMetricsPort", s.PrometheusMetricsPort)
	if s.DebugProfilePort != nil {
		p := int(*s.DebugProfilePort)
		port("spec.debugProfilePort", &p)
	}
	c := s.Controllers
	if n := c.Node; n != nil {
		enabled("spec.controllers.node.syncLabels", n.SyncLabels)
		if h := n.HostEndpoint; h != nil {
			enabled("spec.controllers.node.hostEndpoint.autoCreate", h.AutoCreate)
			enabled("spec.controllers.node.hostEndpoint.createDefaultHostEndpoint", h.CreateDefaultHostEndpoint)
			for i, t := range h.Templates {
				es.add(t.validate(fmt.Sprintf("spec.controllers.node.hostEndpoint.templates[%d]", i)))
			}
		}
	}
	if lb := c.LoadBalancer; lb != nil && lb.AssignIPs != "" {
		es.add(oneOf("spec.controllers.loadBalancer.assignIPs", lb.AssignIPs, "AllServices", "RequestedServicesOnly"))
	}
	if m := c.Migration; m != nil {
		enabled("spec.controllers.policyMigration.enabled", m.PolicyNameMigrator)
	}
	return es.err()
}

func (t AutoHostEndpointTmpl) validate(field string) error {
	var es errs
	if t.GenerateName != "" {
		es.add(ValidateName(field+".generateName", t.GenerateName))
	}
	for i, c := range t.InterfaceCIDRs {
		if _, err := ParseCIDR(c); err != nil {
			es.add(fieldErr(fmt.Sprintf("%s.interfaceCIDRs[%d]", field, i), c, "not a CIDR"))
		}
	}
	if len(t.InterfaceCIDRs) == 0 && t.InterfacePattern == "" {
		es.add(fieldErr(field, nil, "at least one of interfaceCIDRs and interfacePattern is required"))
	}
	es.add(ValidateLabels(field+".labels", t.Labels))
	if t.NodeSelector != "" {
		es.add(ValidateSelector(field+".nodeSelector", t.NodeSelector))
	}
	return es.err()
}
