// Command grafana-dashboard-check validates Grafana dashboard JSON files against Grafana's own
// dashboard schema, as generated into github.com/grafana/grafana-foundation-sdk (dashboard v1 model,
// with every core panel and data-source plugin registered).
//
// The decoding is strict: an unknown field, a field of the wrong type or a missing required field
// anywhere in the dashboard, its variables, its panels' options and field config, or a Prometheus
// query is an error; then the schema's own constraints are checked (Validate).
//
//	grafana-dashboard-check FILE.json...
//
// Prints one line per file ("ok FILE: N panels" or the errors) and exits 1 if any file is invalid.
// Built through tests/support/gotools.py; run by tests/unit/test_monitoring.py.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-dashboard-check FILE.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, path := range os.Args[1:] {
		panels, err := check(path)
		if err != nil {
			fmt.Printf("invalid %s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("ok %s: %d panels\n", path, panels)
	}
	if failed {
		os.Exit(1)
	}
}

// check decodes one dashboard strictly and validates it; it returns the number of (non-row) panels.
func check(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var board dashboard.Dashboard
	if err := problems(board.UnmarshalJSONStrict(raw)); err != nil {
		return 0, err
	}
	if err := problems(board.Validate()); err != nil {
		return 0, err
	}
	// The generated Dashboard decoder drops a panel whose own decoder returns an empty error list, so
	// every panel (and every panel inside a row) is decoded and validated again on its own.
	var doc struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return 0, err
	}
	count := 0
	var errs []error
	for i, item := range doc.Panels {
		var head struct {
			Type   string            `json:"type"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(item, &head); err != nil {
			return 0, err
		}
		items := []json.RawMessage{item}
		if head.Type == "row" {
			var row dashboard.RowPanel
			if err := problems(row.UnmarshalJSONStrict(item)); err != nil {
				errs = append(errs, fmt.Errorf("panels[%d]: %w", i, err))
			}
			items = head.Panels
		}
		for j, p := range items {
			var panel dashboard.Panel
			if err := problems(panel.UnmarshalJSONStrict(p)); err != nil {
				errs = append(errs, fmt.Errorf("panels[%d][%d]: %w", i, j, err))
				continue
			}
			if err := problems(panel.Validate()); err != nil {
				errs = append(errs, fmt.Errorf("panels[%d][%d]: %w", i, j, err))
				continue
			}
			count++
		}
	}
	return count, errors.Join(errs...)
}

// problems drops the empty error list that some generated code paths return instead of nil.
func problems(err error) error {
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		return nil
	}
	return err
}
