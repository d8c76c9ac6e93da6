package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// frameKeys returns the top-level field names of a frame, refusing one
// given twice: encoding/json would quietly take the last. With checkKeys
// it holds frames to the protocol's strictness (docs/agent-protocol.md),
// where encoding/json also matches names case-insensitively ("Ticket_ID"
// would fill ticket_id).
func frameKeys(b []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '{', checked by the caller
		return nil, err
	}
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("field %q appears twice", clip(key, 40))
		}
		seen[key] = true
		keys = append(keys, key)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// checkKeys refuses a name that is not exactly one of the request's
// fields (encoding/json accepted it case-insensitively).
func checkKeys(keys []string, body any) error {
	names := fieldNames(reflect.TypeOf(body).Elem())
	for _, k := range keys {
		if !names[k] {
			return fmt.Errorf("unknown field %q (field names are lower case, as documented)", clip(k, 40))
		}
	}
	return nil
}

// fieldNames returns the JSON names of a request type's fields, embedded
// structs included; computed once per type.
func fieldNames(t reflect.Type) map[string]bool {
	if v, ok := fieldNameCache.Load(t); ok {
		return v.(map[string]bool)
	}
	names := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			names[name] = true
		}
	}
	walk(t)
	fieldNameCache.Store(t, names)
	return names
}

// fieldNameCache is a registry of derived, immutable data (request types
// are fixed at build time).
var fieldNameCache sync.Map
