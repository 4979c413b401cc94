package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// overlays returns the directories under kubernetes/overlays: one per
// region.
func overlays(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("kubernetes/overlays/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays under kubernetes/overlays: %v", err)
	}
	return dirs
}

// object is one object of a kustomize build, decoded into its type.
type object struct {
	kind, name string
	obj        any
}

// kinds are the types objects are decoded into, by apiVersion and kind.
// A kind not listed is an error: the test must know every object it is
// asked to vouch for.
var kinds = map[string]func() any{
	"v1/Namespace":                            func() any { return new(corev1.Namespace) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return new(podMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(prometheusRule) },
}

// build runs kustomize on dir, as `kubectl kustomize dir` does, and
// decodes every object strictly: an unknown field, a misspelt one or a
// value of the wrong type fails the test.
func build(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []object
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s/%s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		gvk := r.GetApiVersion() + "/" + r.GetKind()
		newObj, ok := kinds[gvk]
		if !ok {
			t.Fatalf("%s: %s %s: a kind the tests do not know (%s)", dir, r.GetKind(), r.GetName(), gvk)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly into its type: %v", dir, r.GetKind(), r.GetName(), err)
		}
		out = append(out, object{kind: r.GetKind(), name: r.GetName(), obj: obj})
	}
	return out
}

// get returns the object of kind and name in objs.
func get[T any](t *testing.T, objs []object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			return o.obj.(T)
		}
	}
	t.Fatalf("no %s %q in the build", kind, name)
	var zero T
	return zero
}

// configMap returns the ConfigMap whose name is name, or name with
// kustomize's hash suffix.
func configMap(t *testing.T, objs []object, name string) *corev1.ConfigMap {
	t.Helper()
	for _, o := range objs {
		if cm, ok := o.obj.(*corev1.ConfigMap); ok && cm.Name == name {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %q in the build", name)
	return nil
}

// container returns the pod spec's container called name.
func container(t *testing.T, spec *corev1.PodSpec, name string) *corev1.Container {
	t.Helper()
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			return &spec.Containers[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

// flags are a container's args, each -name=value (or -name alone for a
// boolean), with $(VAR) expanded as the kubelet does.
type flags struct {
	order  []string            // names, in order, repeated ones repeated
	values map[string][]string // values by name, in order
	bools  map[string]bool     // names given without a value (-redirect-https)
}

// one returns the one value of a flag given once; it fails otherwise.
func (f flags) one(t *testing.T, name string) string {
	t.Helper()
	v := f.values[name]
	if len(v) != 1 {
		t.Fatalf("-%s given %d times, want once", name, len(v))
	}
	return v[0]
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// parseArgs expands $(VAR) in c's args from env (the container's env and
// envFrom ConfigMaps, resolved by the caller) and splits them into flags.
// An arg that is not -name or -name=value, or a $(VAR) that nothing
// defines (the kubelet would pass it on literally), fails the test.
func parseArgs(t *testing.T, args []string, env map[string]string) flags {
	t.Helper()
	f := flags{values: map[string][]string{}, bools: map[string]bool{}}
	for _, a := range args {
		for _, m := range varRef.FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Fatalf("arg %q: $(%s) is defined nowhere: the process would get it literally", a, m[1])
			}
		}
		a = varRef.ReplaceAllStringFunc(a, func(s string) string { return env[varRef.FindStringSubmatch(s)[1]] })
		if !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "--") {
			t.Fatalf("arg %q: want -name=value", a)
		}
		name, value, hasValue := strings.Cut(a[1:], "=")
		if !hasValue {
			f.bools[name] = true
		}
		f.order = append(f.order, name)
		f.values[name] = append(f.values[name], value)
	}
	return f
}

// containerEnv resolves c's environment as the kubelet would, from its
// env (values, and the downward API with the values given in fields)
// and its envFrom ConfigMaps in objs. Anything else fails: the test
// would not know the value.
func containerEnv(t *testing.T, objs []object, c *corev1.Container, fields map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			t.Fatalf("container %s: envFrom other than a ConfigMap", c.Name)
		}
		for k, v := range configMap(t, objs, ef.ConfigMapRef.Name).Data {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			v, ok := fields[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("container %s: env %s from field %s: not known to the test", c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			t.Fatalf("container %s: env %s: a source the test does not know", c.Name, e.Name)
		}
	}
	return env
}

// downward are the values the tests give the downward API's fields.
var downward = map[string]string{"metadata.name": "edge-test-0", "status.podIP": "127.0.0.1"}

// mountedFile returns the volume and the key (file name) within it that
// path names in c's mounts, failing unless path is a file directly in a
// mount (no subPath) of a ConfigMap or Secret volume.
func mountedFile(t *testing.T, spec *corev1.PodSpec, c *corev1.Container, path string) (corev1.Volume, string) {
	t.Helper()
	dir, file := filepath.Split(path)
	dir = filepath.Clean(dir)
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) != dir {
			continue
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Fatalf("%s: mounted with subPath: the kubelet never updates it", path)
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name {
				return v, file
			}
		}
		t.Fatalf("%s: mount %s names no volume", path, m.Name)
	}
	t.Fatalf("%s is in no volume mounted into %s", path, c.Name)
	return corev1.Volume{}, ""
}

// port returns the port number of a listen address (":8080",
// "127.0.0.1:9080").
func port(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	var p int32
	if _, err := fmt.Sscan(addr[i+1:], &p); i < 0 || err != nil || p <= 0 {
		t.Fatalf("%q: not an address with a port", addr)
	}
	return p
}

// containerPort returns the number of c's port called name.
func containerPort(t *testing.T, c *corev1.Container, name string) corev1.ContainerPort {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return corev1.ContainerPort{}
}

// selects reports whether the selector's labels are all among labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// readFile reads a file of the deploy directory.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
