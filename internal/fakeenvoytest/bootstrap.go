// Package fakeenvoytest writes the Envoy bootstrap that fakeenvoy runs in the
// project's tests and in tools/bench: an admin and one listener whose HTTP
// connection manager answers every request with a fixed body and, when
// asked, logs each request to a file. It is the one Go copy of that
// document; integration/testlib.sh keeps the shell scenarios' own.
package fakeenvoytest

import "fmt"

// Bootstrap describes the document YAML renders. Ports are on 127.0.0.1;
// port 0 asks the kernel for one.
type Bootstrap struct {
	AdminPort int    // the admin listener's port
	Port      int    // the listener's port
	Listener  string // the listener's name, also its stat prefix, route config and virtual host
	Body      string // the direct response's body (status 200) to every request
	AccessLog string // the file access log's path; "" means no access log
}

// YAML returns the bootstrap as an Envoy v3 bootstrap document that both
// Envoy and fakeenvoy accept. Strings are quoted, so a path or body may hold
// any character.
func (b Bootstrap) YAML() string {
	var accessLog string
	if b.AccessLog != "" {
		accessLog = fmt.Sprintf(`          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
`, b.AccessLog)
	}
	return fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %[1]d}}
static_resources:
  listeners:
  - name: %[3]q
    address: {socket_address: {address: 127.0.0.1, port_value: %[2]d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %[3]q
%[5]s          route_config:
            name: %[3]q
            virtual_hosts:
            - name: %[3]q
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: %[4]q}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`, b.AdminPort, b.Port, b.Listener, b.Body, accessLog)
}
