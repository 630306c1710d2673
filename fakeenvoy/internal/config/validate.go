package config

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// This file checks a bootstrap as Envoy does: the generated constraints
// (protoc-gen-validate) of every message, with ProtoValidationException's
// texts.

// validate runs the generated constraint checks on the bootstrap and on
// every typed config inside it, as Envoy does when it builds each
// extension, and reports the first violation as Envoy's
// ProtoValidationException does.
func validate(root proto.Message) error {
	var first error
	var visit func(m protoreflect.Message)
	check := func(m proto.Message) {
		if v, ok := m.(interface{ ValidateAll() error }); ok && first == nil {
			if err := v.ValidateAll(); err != nil {
				first = fmt.Errorf("Proto constraint validation failed (%s): %s", pgvError(err), prototext.MarshalOptions{}.Format(m))
			}
		}
	}
	visit = func(m protoreflect.Message) {
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err == nil {
				check(inner)
				visit(inner.ProtoReflect())
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			switch {
			case fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					visit(v.List().Get(i).Message())
				}
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
						visit(mv.Message())
						return true
					})
				}
			default:
				visit(v.Message())
			}
			return first == nil
		})
	}
	check(root)
	if first == nil {
		visit(root.ProtoReflect())
	}
	return first
}

// pgvError renders a protoc-gen-validate error the way the C++ generated
// validators word it ("ListenerValidationError.Name: value length must be
// at least 1 characters | caused by ..."); Go's says "invalid Listener.Name".
func pgvError(err error) string {
	type pgv interface {
		Field() string
		Reason() string
		Cause() error
		ErrorName() string
	}
	var multi interface{ AllErrors() []error }
	if errors.As(err, &multi) && len(multi.AllErrors()) > 0 {
		err = multi.AllErrors()[0]
	}
	e, ok := err.(pgv)
	if !ok {
		return err.Error()
	}
	s := fmt.Sprintf("%s.%s: %s", e.ErrorName(), e.Field(), strings.ReplaceAll(e.Reason(), " runes", " characters"))
	if e.Cause() != nil {
		s += " | caused by " + pgvError(e.Cause())
	}
	return s
}
