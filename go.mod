module github.com/envoy-restarter/restarter

go 1.26.0

require (
	github.com/bazelbuild/rules_go v0.60.0
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/google/go-cmp v0.7.0
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/sys v0.50.0
)
