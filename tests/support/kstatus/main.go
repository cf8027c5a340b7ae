// Command kstatus computes the kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status) of one Kubernetes
// object, the way Flux's health checks and `kubectl wait`-style tooling built on cli-utils read it.
//
// It reads one object as JSON on stdin and prints one JSON line on stdout:
//
//	{"status":"Current","message":"Resource is current","conditions":[...]}
//
// The e2e tests (tests/e2e/test_ops_kstatus.py) build it through the Go module proxy and run it
// against live GoldRushPipeline objects.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("read stdin: %v", err)
	}
	// UnmarshalJSON keeps integers as int64, which the kstatus field accessors require.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		fail("parse object: %v", err)
	}
	res, err := status.Compute(obj)
	if err != nil {
		fail("compute status: %v", err)
	}
	out := result{Status: res.Status.String(), Message: res.Message, Conditions: res.Conditions}
	if out.Conditions == nil {
		out.Conditions = []status.Condition{}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("write result: %v", err)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(1)
}
