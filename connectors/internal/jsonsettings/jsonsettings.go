// Package jsonsettings decodes a channel's JSON settings strictly, the way
// every connector's factory must (connectors.Config): unknown members are
// errors that carry their full path ("settings.imap.hots: unknown field"),
// type errors name the field, and nothing may follow the object. It also
// holds the small value types settings share, such as Duration.
//
// It is internal to the connectors tree and imports nothing of ours.
package jsonsettings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Decode decodes raw into v (a pointer to a struct) strictly. An empty or
// null raw leaves v as it is, so that every field takes its default.
func Decode(raw json.RawMessage, v any) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer {
		return errors.New("jsonsettings: Decode needs a pointer")
	}
	if err := unknownFields(trimmed, t.Elem(), "settings"); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("settings: unexpected data after the JSON object")
	}
	return nil
}

// decodeError turns encoding/json errors into messages that name the field
// in the settings' own spelling.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Errorf("settings: must be a JSON object, not %s: %w", typeErr.Value, err)
		}
		return fmt.Errorf("settings.%s: must be %s, not %s: %w", typeErr.Field, typeName(typeErr.Type), typeErr.Value, err)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("settings: invalid JSON at byte %d: %w", syntaxErr.Offset, err)
	}
	return fmt.Errorf("settings: invalid JSON: %w", err)
}

// unknownFields reports the first member of raw, at any depth, that type t
// does not have. encoding/json's own check names only the member, not where
// it is, and matches names regardless of case; this one is exact.
func unknownFields(raw json.RawMessage, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return nil
		}
		var members map[string]json.RawMessage
		if json.Unmarshal(raw, &members) != nil {
			return nil // not an object: the decoder reports the type error
		}
		known := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			known[name] = f.Type
		}
		for _, k := range slices.Sorted(maps.Keys(members)) {
			ft, ok := known[k]
			if !ok {
				return fmt.Errorf("%s.%s: unknown field", path, k)
			}
			if err := unknownFields(members[k], ft, path+"."+k); err != nil {
				return err
			}
		}
	case reflect.Slice:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil
		}
		for i, it := range items {
			if err := unknownFields(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func typeName(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return `a duration such as "30s" or "5m"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32:
		return "a whole number"
	}
	return "a number"
}

// Duration is a time.Duration written in JSON as a string ("30s", "5m").
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		// A type error, so that the decoder names the field.
		return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
