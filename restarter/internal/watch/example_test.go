package watch_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/envoy-restarter/restarter/restarter/internal/watch"
)

// The restarter's use: a change is a hot restart, the rest are warnings.
func Example() {
	dir, err := os.MkdirTemp("", "watch-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(config, []byte("v1"), 0o644); err != nil {
		panic(err)
	}

	w, err := watch.New([]string{config}, 50*time.Millisecond)
	if err != nil {
		panic(err)
	}
	defer w.Close()

	if err := os.WriteFile(config, []byte("v2"), 0o644); err != nil {
		panic(err)
	}
	select {
	case e := <-w.Events():
		switch {
		case e.Err != nil:
			fmt.Printf("warning: %v\n", e.Err)
		case e.Gone:
			fmt.Printf("warning: %s is gone; Envoy keeps its configuration\n", filepath.Base(e.Path))
		default:
			fmt.Printf("%s changed: hot restart\n", filepath.Base(e.Path))
		}
	case <-time.After(5 * time.Second):
		fmt.Println("no event")
	}
	// Output: envoy.yaml changed: hot restart
}
