package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"

	"sigs.k8s.io/yaml"

	"github.com/onecalico/calico/internal/api"
	"github.com/onecalico/calico/internal/datastore"
)

// printer writes what `get` read: each object is an api.Resource (a named
// get) or a *resourceList (a list).
type printer interface {
	print(w io.Writer, pc *printCtx, objs []any) error
}

// printCtx is what column functions and templates may need besides the object.
type printCtx struct {
	ctx    context.Context
	client *datastore.Client
	asn    string // the cluster's default AS number, once looked up
}

// newPrinter picks the printer for -o/--output.
func newPrinter(output string, printNamespace bool) (printer, error) {
	switch output {
	case "yaml", "yml":
		return yamlPrinter{}, nil
	case "json":
		return jsonPrinter{}, nil
	case "ps":
		return tablePrinter{printNamespace: printNamespace}, nil
	case "wide":
		return tablePrinter{wide: true, printNamespace: printNamespace}, nil
	}
	key, value, _ := strings.Cut(output, "=")
	switch key {
	case "go-template":
		if value == "" {
			return nil, errors.New("need to specify a template")
		}
		return templatePrinter{text: value}, nil
	case "go-template-file":
		if value == "" {
			return nil, errors.New("need to specify a template file")
		}
		return templatePrinter{file: value}, nil
	case "custom-columns":
		if value == "" {
			return nil, errors.New("need to specify at least one column")
		}
		return tablePrinter{headings: strings.Split(value, ",")}, nil
	}
	return nil, fmt.Errorf("unrecognized output format '%s'", output)
}

// yamlPrinter prints one object as itself and several as a YAML sequence.
type yamlPrinter struct{}

func (yamlPrinter) print(w io.Writer, _ *printCtx, objs []any) error {
	if len(objs) == 0 {
		return nil
	}
	var v any = objs
	if len(objs) == 1 {
		v = objs[0]
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// jsonPrinter prints one object as itself and several as a JSON array,
// indented by two spaces.
type jsonPrinter struct{}

func (jsonPrinter) print(w io.Writer, _ *printCtx, objs []any) error {
	if len(objs) == 0 {
		return nil
	}
	var v any = objs
	if len(objs) == 1 {
		v = objs[0]
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// tablePrinter prints upstream's ps-style tables: one table per object, a
// row per resource, every cell padded to its column plus three spaces
// (trailing spaces included), and a blank line after each table.
type tablePrinter struct {
	wide           bool
	printNamespace bool
	headings       []string // custom-columns; nil for the kind's own
}

func (t tablePrinter) print(w io.Writer, pc *printCtx, objs []any) error {
	for _, o := range objs {
		var kind string
		var items []api.Resource
		switch v := o.(type) {
		case *resourceList:
			kind, items = v.itemKind.Kind, v.Items
		case api.Resource:
			kind, items = v.GetTypeMeta().Kind, []api.Resource{v}
		default:
			return fmt.Errorf("cannot print %T as a table", o)
		}
		spec := tableSpecFor(kind)
		headings := t.headings
		if headings == nil {
			headings = spec.ps
			if t.wide {
				headings = spec.wide
			}
			if _, ok := spec.cols["NAMESPACE"]; ok && t.printNamespace {
				headings = append([]string{"NAMESPACE"}, headings...)
			}
		}
		cols := make([]colFunc, len(headings))
		for i, h := range headings {
			f, ok := spec.cols[h]
			if !ok {
				valid := make([]string, 0, len(spec.cols))
				for k := range spec.cols {
					valid = append(valid, k)
				}
				sort.Strings(valid)
				return fmt.Errorf("Unknown heading %s, valid values are: %s", h, strings.Join(valid, ", "))
			}
			cols[i] = f
		}
		tw := tabwriter.NewWriter(w, 5, 1, 3, ' ', 0)
		for _, h := range headings {
			fmt.Fprint(tw, h, "\t")
		}
		fmt.Fprintln(tw)
		for _, r := range items {
			m, err := toObj(r)
			if err != nil {
				return err
			}
			for _, f := range cols {
				fmt.Fprint(tw, f(pc, m), "\t")
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	return nil
}

// toObj renders a resource as the generic JSON tree the columns read.
func toObj(r api.Resource) (obj, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// templatePrinter runs a user's Go template with upstream's extra functions
// join, joinAndTruncate and config, over templateData.
type templatePrinter struct {
	text string
	file string
}

func (t templatePrinter) print(w io.Writer, pc *printCtx, objs []any) error {
	text := t.text
	if t.file != "" {
		b, err := os.ReadFile(t.file)
		if err != nil {
			return err
		}
		text = string(b)
	}
	tmpl, err := template.New("get").Funcs(template.FuncMap{
		"join":            templateJoin,
		"joinAndTruncate": joinAndTruncate,
		"config": func(name string) (string, error) {
			if strings.ToLower(name) != "asnumber" {
				return "", fmt.Errorf("unknown config value %q: only asnumber is known", name)
			}
			return pc.asNumber(), nil
		},
	}).Parse(text)
	if err != nil {
		return err
	}
	return tmpl.Execute(w, templateData(objs))
}

// templateData is what a template runs over. As upstream's, it is the list of
// what get read: a resource for each name asked for, or a <Kind>List (with
// .Items) for a whole kind; fields have their Go names (.ObjectMeta.Name,
// .Spec.CIDR). So {{range .}}{{range .Items}}{{.ObjectMeta.Name}}{{end}}{{end}}
// works as upstream. It also has .Items, every resource read in order, and
// each resource .Metadata, so {{range .Items}}{{.Metadata.Name}}{{end}} works.
type templateData []any

// Items returns every resource of the data in order: named ones and the
// items of lists.
func (d templateData) Items() []api.Resource {
	out := []api.Resource{}
	for _, o := range d {
		switch v := o.(type) {
		case *resourceList:
			out = append(out, v.Items...)
		case api.Resource:
			out = append(out, v)
		}
	}
	return out
}

func templateJoin(items any, sep string) string { return joinAndTruncate(items, sep, 0) }

// joinAndTruncate joins the elements of a slice (or the sorted k=v pairs of a
// map) with sep and, when max > 0, cuts the result to max characters ending
// in "...".
func joinAndTruncate(items any, sep string, max int) string {
	if items == nil {
		return ""
	}
	v := reflect.ValueOf(items)
	var parts []string
	switch v.Kind() {
	case reflect.Map:
		for _, k := range v.MapKeys() {
			parts = append(parts, fmt.Sprintf("%v=%v", k.Interface(), v.MapIndex(k).Interface()))
		}
		sort.Strings(parts)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			parts = append(parts, fmt.Sprint(v.Index(i).Interface()))
		}
	default:
		parts = []string{fmt.Sprint(items)}
	}
	return truncate(strings.Join(parts, sep), max)
}

func truncate(s string, max int) string {
	if max > 0 && len(s) > max {
		return s[:max-3] + "..."
	}
	return s
}

// asNumber is the AS number a node without its own uses: the default
// BGPConfiguration's asNumber, else 64512; "unknown" if it cannot be read.
func (pc *printCtx) asNumber() string {
	if pc.asn != "" {
		return pc.asn
	}
	pc.asn = "64512"
	if _, ok := api.LookupKind("BGPConfiguration"); !ok || pc.client == nil {
		return pc.asn
	}
	r, err := pc.client.Get(pc.ctx, "BGPConfiguration", "", "default")
	switch {
	case isNotFound(err):
	case err != nil:
		pc.asn = "unknown"
	default:
		if m, err := toObj(r); err == nil {
			if v, ok := m.get("spec.asNumber"); ok && v != nil {
				pc.asn = fmtValue(v)
			}
		}
	}
	return pc.asn
}
