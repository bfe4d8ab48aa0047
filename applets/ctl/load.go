package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/onecalico/calico/internal/api"
)

// source says where a resource came from, for error messages.
type source struct {
	file string // the path as given, "stdin", or "" for command-line arguments
	doc  int    // 1-based number of the document in the file (empty documents do not count)
	item int    // 1-based item of a List document; 0 when the document is the resource
}

func (s source) String() string {
	if s.item > 0 {
		return fmt.Sprintf("%s, document %d, item %d", s.file, s.doc, s.item)
	}
	return fmt.Sprintf("%s, document %d", s.file, s.doc)
}

// loaded is one resource decoded from the input.
type loaded struct {
	src  source
	kind api.KindInfo
	res  api.Resource
}

// label names the resource for messages: `IPPool "pool1"`.
func (l *loaded) label() string {
	m := l.res.GetObjectMeta()
	if l.kind.Namespaced && m.Namespace != "" {
		return fmt.Sprintf("%s %q", l.kind.Kind, m.Namespace+"/"+m.Name)
	}
	return fmt.Sprintf("%s %q", l.kind.Kind, m.Name)
}

// inputError is a problem with one document or resource of the input. It
// prints as one line naming the file, the document and, when known, the
// resource; errors about command-line arguments print bare.
type inputError struct {
	src  source
	what string // `IPPool "bad"`, or ""
	err  error
}

func (e *inputError) Error() string {
	if e.src.file == "" {
		return oneLine(e.err)
	}
	loc := "error in " + e.src.String()
	if e.what != "" {
		loc += " (" + e.what + ")"
	}
	return loc + ": " + oneLine(e.err)
}

func (e *inputError) Unwrap() error { return e.err }

// oneLine flattens a multi-line error (errors.Join, YAML error lists) to one line.
func oneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// emptyInputError is input with no resources in it; it prints as upstream's message.
type emptyInputError struct{ where string }

func (e emptyInputError) Error() string { return "No resources specified in " + e.where }

// isEmptyInput reports whether err is an emptyInputError.
func isEmptyInput(err error) bool { return errors.As(err, new(emptyInputError)) }

// loadInput reads every resource from name: a file, "-" for stdin, or a
// directory (its .yaml, .yml and .json files; subdirectories too with
// recursive). It returns the resources in input order and one error per bad
// document; the error return is for input that cannot be read at all, or is
// empty (an emptyInputError, unless skipEmpty).
func (e *Env) loadInput(name string, recursive, skipEmpty bool) ([]*loaded, []error, error) {
	if name == "-" {
		b, err := io.ReadAll(e.Stdin)
		if err != nil {
			return nil, nil, fmt.Errorf("read stdin: %w", err)
		}
		out, errs := decodeFile("stdin", b)
		if len(out) == 0 && len(errs) == 0 && !skipEmpty {
			return nil, nil, emptyInputError{"file stdin"}
		}
		return out, errs, nil
	}
	st, err := os.Stat(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Op = "open" // as upstream words it
		}
		return nil, nil, err
	}
	var files []string
	if st.IsDir() {
		err := filepath.WalkDir(name, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p == name || recursive {
					return nil
				}
				return filepath.SkipDir
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	} else {
		files = []string{name}
	}
	var out []*loaded
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, err
		}
		o, es := decodeFile(f, b)
		if len(o) == 0 && len(es) == 0 && !skipEmpty {
			return nil, nil, emptyInputError{"file " + f}
		}
		out = append(out, o...)
		errs = append(errs, es...)
	}
	if len(out) == 0 && len(errs) == 0 && st.IsDir() && !skipEmpty {
		return nil, nil, emptyInputError{"directory " + name}
	}
	return out, errs, nil
}

// rawDoc is one YAML document of a file and the line it starts on.
type rawDoc struct {
	data []byte
	line int // 1-based line of the file where the document starts
}

// splitDocuments cuts a YAML stream at its "---" separator lines and drops
// documents that hold nothing but blank lines and comments.
func splitDocuments(b []byte) []rawDoc {
	var docs []rawDoc
	var cur bytes.Buffer
	start, empty := 1, true
	flush := func() {
		if !empty {
			docs = append(docs, rawDoc{data: append([]byte(nil), cur.Bytes()...), line: start})
		}
		cur.Reset()
		empty = true
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, l := range lines {
		t := strings.TrimRight(string(l), " \t\r\n")
		if t == "---" || strings.HasPrefix(t, "--- ") {
			flush()
			start = i + 2
			if rest := strings.TrimSpace(strings.TrimPrefix(t, "---")); rest != "" {
				// "--- {...}": the document starts on the separator line.
				start = i + 1
				cur.WriteString(rest + "\n")
				empty = false
			}
			continue
		}
		if t == "..." {
			continue
		}
		if s := strings.TrimSpace(t); s != "" && !strings.HasPrefix(s, "#") {
			empty = false
		}
		cur.Write(l)
	}
	flush()
	return docs
}

// yamlError rewrites a YAML parser error to one line with file line numbers.
func yamlError(err error, firstLine int) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = regexp.MustCompile(`line (\d+)`).ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
		return "line " + strconv.Itoa(n+firstLine-1)
	})
	return errors.New("invalid YAML: " + msg)
}

// decodeFile decodes every document of one file.
func decodeFile(file string, b []byte) ([]*loaded, []error) {
	var out []*loaded
	var errs []error
	for i, d := range splitDocuments(b) {
		src := source{file: file, doc: i + 1}
		j, err := yaml.YAMLToJSONStrict(d.data)
		if err != nil {
			errs = append(errs, &inputError{src: src, err: yamlError(err, d.line)})
			continue
		}
		v, err := decodeJSON(j)
		if err != nil {
			errs = append(errs, &inputError{src: src, err: err})
			continue
		}
		o, es := decodeValue(src, v)
		out = append(out, o...)
		errs = append(errs, es...)
	}
	return out, errs
}

// decodeJSON parses JSON keeping numbers exact.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid document: %v", err)
	}
	return v, nil
}

// decodeValue turns one parsed document into resources: a single resource,
// a List (kind "List" or "<Kind>List", as `get -o yaml` prints), or a
// sequence of resources.
func decodeValue(src source, v any) ([]*loaded, []error) {
	var items []any
	switch t := v.(type) {
	case map[string]any:
		kind, _ := t["kind"].(string)
		if kind == "List" || (strings.HasSuffix(kind, "List") && isKind(strings.TrimSuffix(kind, "List"))) {
			if err := checkListEnvelope(t); err != nil {
				return nil, []error{&inputError{src: src, err: err}}
			}
			items, _ = t["items"].([]any)
			break
		}
		r, err := decodeResource(t)
		if err != nil {
			return nil, []error{&inputError{src: src, what: describe(t), err: err}}
		}
		return []*loaded{r.at(src)}, nil
	case []any:
		items = t
	case nil:
		return nil, nil
	default:
		return nil, []error{&inputError{src: src, err: errors.New("not a resource: expected a mapping with apiVersion, kind, metadata and spec")}}
	}
	var out []*loaded
	var errs []error
	for i, it := range items {
		isrc := src
		isrc.item = i + 1
		m, ok := it.(map[string]any)
		if !ok {
			errs = append(errs, &inputError{src: isrc, err: errors.New("not a resource: expected a mapping with apiVersion, kind, metadata and spec")})
			continue
		}
		r, err := decodeResource(m)
		if err != nil {
			errs = append(errs, &inputError{src: isrc, what: describe(m), err: err})
			continue
		}
		out = append(out, r.at(isrc))
	}
	return out, errs
}

func (l *loaded) at(src source) *loaded { l.src = src; return l }

func isKind(kind string) bool {
	k, ok := api.LookupKind(kind)
	return ok && k.Kind == kind
}

// checkListEnvelope checks the fields of a List around its items.
func checkListEnvelope(m map[string]any) error {
	for k, v := range m {
		switch k {
		case "kind":
		case "apiVersion":
			if v != "v1" && v != api.APIVersion {
				return &api.FieldError{Field: "apiVersion", Value: fmt.Sprint(v), Reason: "a List must have apiVersion v1 or " + api.APIVersion}
			}
		case "metadata":
		case "items":
			if _, ok := v.([]any); !ok && v != nil {
				return &api.FieldError{Field: "items", Reason: "must be a list of resources"}
			}
		default:
			return &api.FieldError{Field: k, Reason: "field is not recognized or is in the wrong location"}
		}
	}
	return nil
}

// describe names a not-yet-decoded resource for messages, as far as it can.
func describe(m map[string]any) string {
	kind, _ := m["kind"].(string)
	meta, _ := m["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	switch {
	case kind == "" || name == "":
		return ""
	case ns != "":
		return fmt.Sprintf("%s %q", kind, ns+"/"+name)
	}
	return fmt.Sprintf("%s %q", kind, name)
}

// decodeResource checks apiVersion and kind, then decodes strictly: every
// field must be one the kind has, spelled exactly, with a value of its type.
func decodeResource(m map[string]any) (*loaded, error) {
	kind, ok := m["kind"].(string)
	if !ok || kind == "" {
		if _, present := m["kind"]; !present {
			return nil, &api.FieldError{Field: "kind", Reason: "a kind is required (e.g. IPPool)"}
		}
		return nil, &api.FieldError{Field: "kind", Value: fmt.Sprint(m["kind"]), Reason: "must be a resource kind such as IPPool"}
	}
	k, ok := api.LookupKind(kind)
	if !ok {
		return nil, fmt.Errorf("unknown resource kind %q", kind)
	}
	if k.Kind != kind {
		return nil, fmt.Errorf("unknown resource kind %q (kinds are case-sensitive: did you mean %q?)", kind, k.Kind)
	}
	switch av := m["apiVersion"].(type) {
	case string:
		if av != api.APIVersion {
			return nil, &api.FieldError{Field: "apiVersion", Value: av, Reason: "must be " + api.APIVersion}
		}
	case nil:
		return nil, &api.FieldError{Field: "apiVersion", Reason: "required: " + api.APIVersion}
	default:
		return nil, &api.FieldError{Field: "apiVersion", Value: fmt.Sprint(av), Reason: "must be " + api.APIVersion}
	}
	r := k.New()
	if err := checkStrictResource(m, r); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("decode %s: %v", k.Kind, err)
	}
	tm := r.GetTypeMeta()
	tm.Kind, tm.APIVersion = k.Kind, api.APIVersion
	return &loaded{kind: k, res: r}, nil
}
