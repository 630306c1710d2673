package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// parseError is a failure of the JSON → proto step, in the two shapes
// Envoy's MessageUtil::loadFromJson reports: unknown fields through the
// validation visitor, anything else as "Unable to parse JSON as proto".
type parseError struct {
	unknownField bool
	path         string // where in the document, Envoy's "(a.b[0].c)" prefix
	reason       string
}

func (e *parseError) Error() string { return e.status() }

func (e *parseError) status() string {
	if e.path == "" {
		return "INVALID_ARGUMENT:" + e.reason
	}
	return fmt.Sprintf("INVALID_ARGUMENT:(%s) %s", e.path, e.reason)
}

// normalize walks a decoded JSON document alongside the message descriptor
// it is meant for, and does what Envoy's JSON parsing does beyond
// protojson's: enum names in any case (Envoy parses with
// case_insensitive_enum_parsing, so its own configs say "codec_type:
// http1") and booleans written as quoted "true"/"false" (the templated
// integration configs say enable_reuse_port: "true"). On the way it finds
// unknown fields and unknown "@type"s, so they are reported with the path
// Envoy's parser gives, before protojson sees the document.
func normalize(md protoreflect.MessageDescriptor, v any, path string) (any, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return v, nil // protojson reports the type mismatch
	}
	switch md.FullName() {
	case "google.protobuf.Any":
		return normalizeAny(obj, path)
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		return v, nil // free-form JSON
	}
	fields := md.Fields()
	for key, val := range obj {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByTextName(key)
		}
		if fd == nil {
			return nil, &parseError{unknownField: true, path: path, reason: key + ": Cannot find field."}
		}
		out, err := normalizeField(fd, val, join(path, string(fd.Name())))
		if err != nil {
			return nil, err
		}
		obj[key] = out
	}
	return obj, nil
}

func normalizeAny(obj map[string]any, path string) (any, error) {
	url, _ := obj["@type"].(string)
	if url == "" {
		if len(obj) == 0 {
			return obj, nil
		}
		return nil, &parseError{path: path, reason: "@type must contain type URL"}
	}
	name := url[strings.LastIndex(url, "/")+1:]
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if err != nil {
		return nil, &parseError{path: path, reason: "Invalid type URL, unknown type: " + name}
	}
	md := mt.Descriptor()
	if isWellKnown(md) {
		if val, ok := obj["value"]; ok {
			out, err := normalize(md, val, path)
			if err != nil {
				return nil, err
			}
			obj["value"] = out
		}
		return obj, nil
	}
	inner := make(map[string]any, len(obj))
	for k, val := range obj {
		if k != "@type" {
			inner[k] = val
		}
	}
	if _, err := normalize(md, inner, path); err != nil {
		return nil, err
	}
	for k, val := range inner {
		obj[k] = val
	}
	return obj, nil
}

// isWellKnown: messages whose JSON form is not an object of fields; inside
// an Any their JSON sits under "value".
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf" && md.FullName() != "google.protobuf.Empty"
}

func normalizeField(fd protoreflect.FieldDescriptor, v any, path string) (any, error) {
	switch {
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		for k, val := range obj {
			out, err := normalizeSingular(fd.MapValue(), val, fmt.Sprintf("%s[%q]", path, k))
			if err != nil {
				return nil, err
			}
			obj[k] = out
		}
		return obj, nil
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			return v, nil
		}
		for i, val := range list {
			out, err := normalizeSingular(fd, val, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			list[i] = out
		}
		return list, nil
	}
	return normalizeSingular(fd, v, path)
}

func normalizeSingular(fd protoreflect.FieldDescriptor, v any, path string) (any, error) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		if md.FullName() == "google.protobuf.BoolValue" {
			return quotedBool(v), nil
		}
		return normalize(md, v, path)
	case protoreflect.EnumKind:
		s, ok := v.(string)
		if !ok || fd.Enum().Values().ByName(protoreflect.Name(s)) != nil {
			return v, nil
		}
		if up := strings.ToUpper(s); fd.Enum().Values().ByName(protoreflect.Name(up)) != nil {
			return up, nil
		}
	case protoreflect.BoolKind:
		return quotedBool(v), nil
	}
	return v, nil
}

func quotedBool(v any) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	return v
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// decodeJSON decodes keeping numbers as written, so that protojson sees
// exactly the digits of the document.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON document")
	}
	return v, nil
}

// unmarshal is MessageUtil::loadFromJson: Envoy's error texts for unknown
// fields and for everything else.
func unmarshal(doc []byte, m proto.Message) error {
	typeName := m.ProtoReflect().Descriptor().FullName()
	v, err := decodeJSON(doc)
	if err == nil {
		v, err = normalize(m.ProtoReflect().Descriptor(), v, "")
	} else {
		err = &parseError{reason: err.Error()}
	}
	if err == nil {
		var norm []byte
		if norm, err = json.Marshal(v); err == nil {
			if uerr := protojson.Unmarshal(norm, m); uerr != nil {
				err = &parseError{reason: strings.TrimPrefix(uerr.Error(), "proto: ")}
			}
		}
	}
	var pe *parseError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe) && pe.unknownField:
		return fmt.Errorf("Protobuf message (type %s reason %s) has unknown fields", typeName, pe.status())
	case errors.As(err, &pe):
		return fmt.Errorf("Unable to parse JSON as proto (%s): %s", pe.status(), compactJSON(doc))
	}
	return err
}

func compactJSON(doc []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, doc) != nil {
		return string(doc)
	}
	return buf.String()
}
