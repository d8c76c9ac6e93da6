package httpjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// Decoder reads a request body strictly. The zero Decoder is ready to
// use; Decode is the zero Decoder's method.
type Decoder struct {
	// NotAnObject words the refusal of a body that is JSON but not an
	// object, given the JSON kind it is ("array", "string"). Nil means
	// "the body must be a JSON object, not an array". It is a field
	// because the admin API has always said "not array", and clients
	// may match on an API's words.
	NotAnObject func(kind string) string
}

// Decode decodes with the zero Decoder.
func Decode(r *http.Request, dst any) error { return Decoder{}.Decode(r, dst) }

// Decode reads one JSON object into dst: the content type must be JSON,
// unknown fields and trailing data are refused, and a body over the
// limit of an http.MaxBytesReader is 413. Each refusal is an *Error that
// names what is wrong, with the field when there is one.
func (d Decoder) Decode(r *http.Request, dst any) error {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Msg: `send the body as JSON with "Content-Type: application/json"`}
	}
	dec := json.NewDecoder(r.Body) // limited by the caller's http.MaxBytesReader
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return d.decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return d.decodeError(err)
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Msg: "the body has data after the JSON object; send one object"}
	}
	return nil
}

func (d Decoder) decodeError(err error) error {
	var (
		mb  *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	bad := func(code, field, format string, args ...any) error {
		return &Error{Status: http.StatusBadRequest, Code: code, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case errors.As(err, &mb):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Msg: fmt.Sprintf("the body is larger than %d bytes", mb.Limit)}
	case errors.Is(err, io.EOF):
		return bad("invalid_json", "", "the body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return bad("invalid_json", "", "the body ends in the middle of the JSON object")
	case errors.As(err, &se):
		return bad("invalid_json", "", "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &ute):
		if ute.Field == "" {
			if d.NotAnObject != nil {
				return bad("invalid_json", "", "%s", d.NotAnObject(ute.Value))
			}
			return bad("invalid_json", "", "the body must be a JSON object, not %s", article(ute.Value))
		}
		// For a map value Field names the map: "secrets" holds a number
		// where a string is expected.
		return bad("invalid_type", ute.Field, "field %q holds %s where %s is expected", ute.Field, article(ute.Value), jsonType(ute.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no type for this error; its text is stable.
		f, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return bad("unknown_field", f, "unknown field %q; the API description lists the fields", f)
	}
	return bad("invalid_json", "", "unreadable JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// article puts "a" or "an" before a JSON kind ("an array").
func article(jsonValue string) string {
	if jsonValue == "" {
		return "a value"
	}
	if strings.ContainsRune("aeiou", rune(jsonValue[0])) {
		return "an " + jsonValue
	}
	return "a " + jsonValue
}

// jsonType names a Go type in JSON's words for error messages.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another JSON type"
}
