package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/onecalico/calico/internal/api"
)

// runPatch changes one stored resource in place with a merge patch (RFC
// 7386), a JSON patch (RFC 6902), or "strategic", upstream's default, which
// for Calico's kinds (none has list merge keys) is the merge patch. The
// result is decoded and checked as strictly as a file, then written with a
// compare-and-swap on the revision that was patched.
func runPatch(ctx context.Context, e *Env, args []string) error {
	fs := e.newFlagSet("patch", `calicoctl patch <KIND> <NAME> --patch=<PATCH> [--type=<TYPE>] [--config=<CONFIG>] [--namespace=<NS>] [--context=<context>] [--allow-version-mismatch]`)
	var patch, typ, namespace string
	fs.StringVarP(&patch, "patch", "p", "", "Spec to use to patch the resource.")
	fs.StringVarP(&typ, "type", "t", "strategic", "Format of patch type:\n  strategic   Strategic merge patch (default; the same as merge for Calico resources)\n  json        JSON Patch, RFC 6902\n  merge       JSON Merge Patch, RFC 7386")
	addNamespaceFlag(fs, &namespace)
	addCompatFlags(fs)
	if err := parseVerb(fs, "patch", args); err != nil {
		return err
	}
	if fs.NArg() != 2 || patch == "" {
		return badUsage("patch", args)
	}
	if typ != "strategic" && typ != "merge" && typ != "json" {
		return usagef("patch: --type must be strategic, merge or json, not %q", typ)
	}
	k, ok := api.LookupKind(fs.Arg(0))
	if !ok {
		return fmt.Errorf("resource type '%s' is not supported", fs.Arg(0))
	}
	name := fs.Arg(1)
	if name == "" {
		return errors.New("resource name may not be empty")
	}
	ns, err := resolveNamespace(k, namespace, namespace, false)
	if err != nil {
		return err
	}
	id := resourceID(k, ns, name)
	if k.Kind == api.KindClusterInformation {
		return errors.New("Hit error: operation apply or replace is not supported on ClusterInformation")
	}
	c, err := e.Client()
	if err != nil {
		return fmt.Errorf("Failed to create Calico API client: %v", err)
	}
	old, err := c.Get(ctx, k.Kind, ns, name)
	if err != nil {
		return fmt.Errorf("Hit error: %v", oneLine(storeError(id, err)))
	}
	patched, err := applyPatch(old, typ, patch)
	if err != nil {
		return fmt.Errorf("Hit error: patch %s: %v", id, oneLine(err))
	}
	m, pm := old.GetObjectMeta(), patched.GetObjectMeta()
	if pm.Name != m.Name || pm.Namespace != m.Namespace {
		return fmt.Errorf("Hit error: patch %s: metadata.name and metadata.namespace cannot be changed by a patch", id)
	}
	rv := pm.ResourceVersion
	forUpdate(old, patched)
	if rv != "" {
		pm.ResourceVersion = rv
	}
	if _, err := c.Update(ctx, patched); err != nil {
		var fe *api.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("Hit error: the patched %s is invalid: %v", id, oneLine(err))
		}
		return fmt.Errorf("Hit error: %v", oneLine(storeError(id, err)))
	}
	fmt.Fprintf(e.Stdout, "Successfully patched 1 '%s' resource\n", k.Kind)
	return nil
}

// applyPatch returns a new resource: old with the patch applied, decoded strictly.
func applyPatch(old api.Resource, typ, patch string) (api.Resource, error) {
	ob, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	doc, err := decodeJSON(ob)
	if err != nil {
		return nil, err
	}
	pj, err := yaml.YAMLToJSON([]byte(patch)) // JSON is YAML; YAML is accepted too
	if err != nil {
		return nil, fmt.Errorf("the patch is not valid JSON: %v", oneLine(err))
	}
	p, err := decodeJSON(pj)
	if err != nil {
		return nil, fmt.Errorf("the patch is not valid JSON: %v", err)
	}
	var out any
	if typ == "json" {
		if out, err = jsonPatch(doc, p); err != nil {
			return nil, err
		}
	} else {
		if _, ok := p.(map[string]any); !ok {
			return nil, fmt.Errorf("a %s patch must be a JSON object, e.g. {\"spec\":{\"natOutgoing\":true}}", typ)
		}
		out = mergePatch(doc, p)
	}
	m, ok := out.(map[string]any)
	if !ok {
		return nil, errors.New("the patched document is not an object")
	}
	l, err := decodeResource(m)
	if err != nil {
		return nil, fmt.Errorf("the patched resource is invalid: %v", err)
	}
	if l.kind.Kind != old.GetTypeMeta().Kind {
		return nil, errors.New("kind cannot be changed by a patch")
	}
	return l.res, nil
}
