package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The flag values that check what they are given as they are parsed.

// choice is a flag.Value for an enum: one of names, stored as its index.
type choice[T ~int] struct {
	v     *T
	names []string
}

func (c choice[T]) String() string {
	if c.v == nil || int(*c.v) >= len(c.names) {
		return ""
	}
	return c.names[*c.v]
}

// placeholder names the values in the usage text: "auto|off".
func (c choice[T]) placeholder() string { return strings.Join(c.names, "|") }

func (c choice[T]) Set(s string) error {
	for i, name := range c.names {
		if s == name {
			*c.v = T(i)
			return nil
		}
	}
	return fmt.Errorf("must be %s", strings.Join(c.names, " or "))
}

// positive is a flag.Value for a duration that must be positive.
type positive struct{ d *time.Duration }

func (p positive) String() string {
	if p.d == nil {
		return ""
	}
	return p.d.String()
}

func (positive) placeholder() string { return "duration" }

func (p positive) Set(s string) error {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return errors.New("parse error")
	case d <= 0:
		return errors.New("must be positive")
	}
	*p.d = d
	return nil
}
