// Command argocd-health computes the health of one Kubernetes object the way Argo CD's application
// controller does, with a custom health check registered in argocd-cm.
//
// Usage: argocd-health HEALTH_LUA < objects.json
//
// stdin holds one or more objects as JSON values one after the other (JSON lines, say); one process judges
// them all, so the settings manager is set up once.
//
// The script at HEALTH_LUA is put into an argocd-cm ConfigMap under
// `resource.customizations.health.<group>_<kind>` (the key docs/installation.md registers), and the
// ConfigMap is read back through Argo CD's own settings manager (util/settings), so the key is parsed
// by Argo CD. The object is then judged by gitops-engine's health.GetResourceHealth with the overrides
// wrapped in util/lua.ResourceHealthOverrides: the exact call the controller makes
// (controller/health.go), which runs the script in Argo CD's Lua sandbox (gopher-lua, the libraries
// Argo CD opens, its one-second timeout) and validates the returned table.
//
// It prints one JSON line per object on stdout, in input order:
//
//	{"status":"Healthy","message":"...","error":""}
//
// where `error` is the error Argo CD logs when the script fails (then status is Unknown, as Argo CD
// shows it). Callers: tests/support/argocd/__init__.py, for tests/unit/test_argocd_health.py and the
// e2e tests that compare Argo CD's verdict with kstatus's.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/gitops-engine/pkg/health"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

const namespace = "argocd"

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error"`
}

func main() {
	log.SetLevel(log.WarnLevel) // the settings manager logs its defaults at info level
	if len(os.Args) != 2 {
		fail("usage: argocd-health HEALTH_LUA < objects.json")
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("read script: %v", err)
	}
	objects, err := readObjects(os.Stdin)
	if err != nil {
		fail("%v", err)
	}
	if len(objects) == 0 {
		fail("no object on stdin")
	}

	// One argocd-cm holding the script for every kind on stdin, as an Argo CD administrator registers it.
	data := map[string]string{}
	for _, obj := range objects {
		data[configMapKey(obj.GroupVersionKind().GroupKind())] = string(script)
	}
	argocdCM := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      common.ArgoCDConfigMapName,
			Namespace: namespace,
			Labels:    map[string]string{"app.kubernetes.io/part-of": "argocd"},
		},
		Data: data,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	manager := settings.NewSettingsManager(ctx, fake.NewClientset(argocdCM), namespace)
	overrides, err := manager.GetResourceOverrides()
	if err != nil {
		fail("read resource overrides from argocd-cm: %v", err)
	}

	encoder := json.NewEncoder(os.Stdout)
	for _, obj := range objects {
		out := result{}
		status, err := health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
		if err != nil {
			out.Error = err.Error()
		}
		if status != nil {
			out.Status, out.Message = string(status.Status), status.Message
		}
		if err := encoder.Encode(out); err != nil {
			fail("write result: %v", err)
		}
	}
}

// configMapKey is the argocd-cm key of a health customization for a group and kind (docs/installation.md).
func configMapKey(gk schema.GroupKind) string {
	if gk.Group == "" {
		return "resource.customizations.health." + gk.Kind
	}
	return "resource.customizations.health." + gk.Group + "_" + gk.Kind
}

// readObjects decodes the JSON values on r, one object each.
func readObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	decoder := json.NewDecoder(r)
	var objects []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			return objects, nil
		} else if err != nil {
			return nil, fmt.Errorf("read object %d: %w", len(objects)+1, err)
		}
		// UnmarshalJSON keeps integers as int64, as the controller's live objects have them.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("parse object %d: %w", len(objects)+1, err)
		}
		objects = append(objects, obj)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(1)
}
