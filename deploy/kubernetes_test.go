package deploy

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/edgecdn/edge"
	"github.com/edgecdn/edge/dnsgeo"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Memory figures of the bench (bench/results/2026-11-25-bd7db9cdfa6c.md,
// "Memory"): an edge starts at ~20 MiB resident and grows 1.11 bytes per
// byte cached in memory; negotiate keeps one idle encoder per coding
// (~90 MB, negotiate/codecs.go) and derivations in flight need more.
const (
	rssAtStart      = 20 << 20
	rssPerByteCache = 1.11
	encoders        = 128 << 20 // idle encoders and derivations in flight
)

// TestOverlays builds every overlay (one per region) and holds what it
// makes to what the edge and dnsgeo need to run well.
func TestOverlays(t *testing.T) {
	for _, dir := range overlays(t) {
		region := filepath.Base(dir)
		t.Run(region, func(t *testing.T) {
			objs := build(t, dir)
			for _, o := range objs {
				if m, ok := o.obj.(metav1.Object); ok && o.kind != "Namespace" && m.GetNamespace() != "edge" {
					t.Errorf("%s %s: namespace %q, want edge", o.kind, o.name, m.GetNamespace())
				}
			}
			checkEdge(t, objs, region)
			checkDnsgeo(t, objs)
		})
	}
}

// TestBaseAndMonitoringBuild: the base and the monitoring kustomization
// build and decode too (the base is what overlays start from; monitoring
// is applied beside an overlay), and the PodMonitors scrape the pods an
// overlay makes, with the token the edges read.
func TestBaseAndMonitoringBuild(t *testing.T) {
	build(t, "kubernetes/base")
	objs := build(t, "kubernetes/monitoring")
	base := build(t, overlays(t)[0]) // the base with a region's values
	dep := get[*appsv1.Deployment](t, base, "Deployment", "edge")
	edgeC := container(t, &dep.Spec.Template.Spec, "edge")
	pm := get[*podMonitor](t, objs, "PodMonitor", "edge")
	if !selects(pm.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Errorf("PodMonitor edge selects %v, not the edge pods (%v)", pm.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		containerPort(t, edgeC, ep.Port)
		if ep.Path != "/metrics" {
			t.Errorf("PodMonitor edge: path %q", ep.Path)
		}
		// The admin token: the Secret and key the edge reads.
		if ep.Authorization == nil {
			t.Fatal("PodMonitor edge: no authorization: every edge answers 401")
		}
		tokenFile := parseArgs(t, edgeC.Args, containerEnv(t, base, edgeC, downward)).one(t, "admin-token-file")
		vol, key := mountedFile(t, &dep.Spec.Template.Spec, edgeC, tokenFile)
		if vol.Secret == nil || ep.Authorization.Credentials.Name != vol.Secret.SecretName || ep.Authorization.Credentials.Key != key {
			t.Errorf("PodMonitor edge reads the token from %s/%s; the edge from the volume %+v, key %s",
				ep.Authorization.Credentials.Name, ep.Authorization.Credentials.Key, vol.VolumeSource, key)
		}
	}
	if !slices.Contains(pm.Spec.PodTargetLabels, "region") {
		t.Error("PodMonitor edge does not copy the pods' region label: the rules and the dashboard group by it")
	}
	dns := get[*appsv1.Deployment](t, base, "Deployment", "dnsgeo")
	pmd := get[*podMonitor](t, objs, "PodMonitor", "dnsgeo")
	if !selects(pmd.Spec.Selector.MatchLabels, dns.Spec.Template.Labels) {
		t.Errorf("PodMonitor dnsgeo selects %v, not the dnsgeo pods", pmd.Spec.Selector.MatchLabels)
	}
	if slices.Contains(pmd.Spec.PodTargetLabels, "region") {
		t.Error("PodMonitor dnsgeo copies a region label over dnsgeo's own (it would become exported_region)")
	}
	for _, ep := range pmd.Spec.PodMetricsEndpoints {
		containerPort(t, container(t, &dns.Spec.Template.Spec, "dnsgeo"), ep.Port)
	}
	get[*prometheusRule](t, objs, "PrometheusRule", "edge")
}

func checkEdge(t *testing.T, objs []object, region string) {
	dep := get[*appsv1.Deployment](t, objs, "Deployment", "edge")
	spec := &dep.Spec.Template.Spec
	c := container(t, spec, "edge")
	if !selects(dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		t.Fatalf("Deployment edge: selector %v does not select its pods %v", dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
	}
	if dep.Spec.Template.Labels["region"] != region {
		t.Errorf("edge pods are labelled region=%q, want %q (the overlay's name)", dep.Spec.Template.Labels["region"], region)
	}
	if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/edge" {
		t.Errorf("edge command %q: want /usr/local/bin/edge, with every flag in args", c.Command)
	}
	if c.Image == "edge" || c.Image == "" {
		t.Errorf("edge image %q: the overlay must name the image it runs", c.Image)
	}
	env := containerEnv(t, objs, c, downward)
	f := parseArgs(t, c.Args, env)
	if got := f.one(t, "region"); got != region {
		t.Errorf("-region=%s in overlay %s", got, region)
	}

	// Ports: the flags' ports are the container's, and the Services
	// reach them by name.
	httpPort := containerPort(t, c, "http")
	httpsPort := containerPort(t, c, "https")
	adminPort := containerPort(t, c, "admin")
	for _, p := range []struct {
		flag string
		cp   corev1.ContainerPort
	}{{"http", httpPort}, {"https", httpsPort}, {"admin", adminPort}} {
		if got := port(t, f.one(t, p.flag)); got != p.cp.ContainerPort || p.cp.Protocol != corev1.ProtocolTCP {
			t.Errorf("-%s listens on %d; container port %s is %d/%s", p.flag, got, p.cp.Name, p.cp.ContainerPort, p.cp.Protocol)
		}
	}
	// HTTP/3: QUIC on the UDP port of -https, and Alt-Svc naming the
	// port browsers reach through the load balancer, not the container's.
	if f.values["http3"] != nil {
		if h3 := containerPort(t, c, "h3"); h3.ContainerPort != httpsPort.ContainerPort || h3.Protocol != corev1.ProtocolUDP {
			t.Errorf("-http3: container port h3 is %d/%s, want %d/UDP (the port of -https)", h3.ContainerPort, h3.Protocol, httpsPort.ContainerPort)
		}
		if got := f.one(t, "alt-svc-port"); got != "443" {
			t.Errorf("-alt-svc-port=%s: Alt-Svc must name the load balancer's 443", got)
		}
	}
	if u := f.one(t, "admin-url"); u != "http://"+downward["status.podIP"]+":"+itoa(adminPort.ContainerPort) {
		t.Errorf("-admin-url=%s: want the pod's address and the admin port", u)
	}

	// Probes: readiness is /healthz (the truthful health), liveness the
	// cheap /livez, both on the admin listener, which exempts them from
	// the token. TestMetricsExist asks a real edge for both.
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/healthz"}, {"liveness", c.LivenessProbe, "/livez"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("edge: no %s probe over HTTP", p.what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("edge %s probe: path %q, want %s", p.what, p.probe.HTTPGet.Path, p.path)
		}
		if p.probe.HTTPGet.Port != intstr.FromString("admin") && p.probe.HTTPGet.Port != intstr.FromInt32(adminPort.ContainerPort) {
			t.Errorf("edge %s probe: port %s, want the admin port", p.what, p.probe.HTTPGet.Port.String())
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.FailureThreshold*c.LivenessProbe.PeriodSeconds < 30 {
		t.Errorf("liveness: restarted after %d s without an answer: too eager for a process under load",
			c.LivenessProbe.FailureThreshold*c.LivenessProbe.PeriodSeconds)
	}

	checkSecurity(t, "edge", spec, c)

	// Shutdown: the grace period covers the preStop sleep (while the load
	// balancer stops sending) and -shutdown-timeout (in-flight requests),
	// with time left to exit.
	shutdown, err := time.ParseDuration(f.one(t, "shutdown-timeout"))
	if err != nil {
		t.Fatal(err)
	}
	preStop := time.Duration(0)
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("edge: no preStop sleep: the load balancer would send new connections to a closed listener")
	} else {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("edge: no terminationGracePeriodSeconds")
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace < preStop+shutdown+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v < preStop %v + -shutdown-timeout %v + 5s: in-flight requests are killed", grace, preStop, shutdown)
	}

	// Memory: sized from the bench, the same request and limit, and the
	// Go runtime's soft limit under the container's.
	mem := bytesFlag(t, f, "mem")
	limits, requests := c.Resources.Limits, c.Resources.Requests
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := requests[r]; !ok {
			t.Errorf("edge: no %s request", r)
		}
		if _, ok := limits[r]; !ok {
			t.Errorf("edge: no %s limit", r)
		}
	}
	memLimit := limits[corev1.ResourceMemory]
	need := int64(rssAtStart + rssPerByteCache*float64(mem) + encoders)
	if memLimit.Value() < need {
		t.Errorf("memory limit %s < %s, what -mem=%s takes by the bench's figures", memLimit.String(), humanize.IBytes(uint64(need)), humanize.IBytes(uint64(mem)))
	}
	if r := requests[corev1.ResourceMemory]; r.Cmp(memLimit) != 0 {
		t.Errorf("memory request %s != limit %s: a cache that is evicted under node pressure loses its memory tier", r.String(), memLimit.String())
	}
	goMem, ok := env["GOMEMLIMIT"]
	if !ok {
		t.Error("edge: no GOMEMLIMIT: the Go runtime does not know the container's limit")
	} else if q, err := resource.ParseQuantity(strings.TrimSuffix(goMem, "B")); err != nil {
		t.Errorf("GOMEMLIMIT=%s: %v", goMem, err)
	} else if q.Value() >= memLimit.Value() || float64(q.Value()) < rssPerByteCache*float64(mem) {
		t.Errorf("GOMEMLIMIT=%s: want between what -mem holds (%s) and the limit (%s)", goMem, humanize.IBytes(uint64(rssPerByteCache*float64(mem))), memLimit.String())
	}

	// The disk tier: -cache-dir is a writable emptyDir larger than -disk
	// (the kubelet evicts a pod whose emptyDir passes its sizeLimit).
	disk := bytesFlag(t, f, "disk")
	cacheDir := f.one(t, "cache-dir")
	var cacheVol *corev1.Volume
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) == filepath.Clean(cacheDir) {
			if m.ReadOnly {
				t.Errorf("-cache-dir %s is mounted read-only", cacheDir)
			}
			for i := range spec.Volumes {
				if spec.Volumes[i].Name == m.Name {
					cacheVol = &spec.Volumes[i]
				}
			}
		}
	}
	switch {
	case cacheVol == nil:
		t.Errorf("-cache-dir %s is not a mounted volume: the root file system is read-only", cacheDir)
	case cacheVol.EmptyDir != nil:
		if cacheVol.EmptyDir.SizeLimit == nil {
			t.Error("cache emptyDir without sizeLimit")
		} else if sl := cacheVol.EmptyDir.SizeLimit.Value(); disk == 0 || float64(sl) < 1.2*float64(disk) {
			t.Errorf("cache sizeLimit %s: want at least 1.2 x -disk (%s) for records, purges.log and files being written", cacheVol.EmptyDir.SizeLimit.String(), humanize.IBytes(uint64(disk)))
		} else if es, ok := requests[corev1.ResourceEphemeralStorage]; !ok || es.Cmp(*cacheVol.EmptyDir.SizeLimit) < 0 {
			t.Errorf("ephemeral-storage request %s below the cache's sizeLimit %s: the node may not have the room", es.String(), cacheVol.EmptyDir.SizeLimit.String())
		}
	case cacheVol.Ephemeral != nil:
		st := cacheVol.Ephemeral.VolumeClaimTemplate.Spec.Resources.Requests[corev1.ResourceStorage]
		if float64(st.Value()) < 1.2*float64(disk) {
			t.Errorf("cache volume %s: want at least 1.2 x -disk", st.String())
		}
	default:
		t.Errorf("cache volume %s: want an emptyDir with a sizeLimit or an ephemeral volume", cacheVol.Name)
	}

	// The config file: in a ConfigMap volume, loaded by the edge's own
	// loader, naming only hosts the edge has certificates for.
	vol, key := mountedFile(t, spec, c, f.one(t, "config"))
	if vol.ConfigMap == nil {
		t.Fatalf("-config: volume %s is not a ConfigMap", vol.Name)
	}
	text, ok := configMap(t, objs, vol.ConfigMap.Name).Data[key]
	if !ok {
		t.Fatalf("-config: ConfigMap %s has no %s", vol.ConfigMap.Name, key)
	}
	cfgPath := filepath.Join(t.TempDir(), key)
	os.WriteFile(cfgPath, []byte(text), 0o644)
	cfg, err := edge.LoadConfig(cfgPath)
	if err != nil {
		t.Fatalf("edge.yaml: %v", err)
	}
	domains := strings.Split(f.one(t, "domains"), ",")
	for _, s := range cfg.Sites {
		if len(s.MustServe) == 0 {
			t.Errorf("edge.yaml: site %v has no must_serve paths: /healthz cannot tell whether it can serve", s.Hosts)
		}
		for _, h := range s.Hosts {
			if !slices.Contains(domains, h) {
				t.Errorf("edge.yaml: host %s is not in -domains %v: browsers would get no certificate", h, domains)
			}
		}
	}

	// The admin token: a Secret's key, readable by the edge's group.
	vol, _ = mountedFile(t, spec, c, f.one(t, "admin-token-file"))
	if vol.Secret == nil {
		t.Errorf("-admin-token-file: volume %s is not a Secret", vol.Name)
	} else if spec.SecurityContext.FSGroup == nil || vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o040 == 0 {
		t.Errorf("-admin-token-file: the non-root edge cannot read it (fsGroup and a group-readable defaultMode)")
	}

	// Spread across zones, selecting the edge pods.
	zones := false
	for _, tsc := range spec.TopologySpreadConstraints {
		if tsc.TopologyKey == "topology.kubernetes.io/zone" && tsc.LabelSelector != nil && selects(tsc.LabelSelector.MatchLabels, dep.Spec.Template.Labels) {
			zones = true
		}
	}
	if !zones {
		t.Error("edge pods are not spread across zones")
	}

	// Identity: the ServiceAccount carries an IRSA role.
	sa := get[*corev1.ServiceAccount](t, objs, "ServiceAccount", spec.ServiceAccountName)
	if !regexp.MustCompile(`^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$`).MatchString(sa.Annotations["eks.amazonaws.com/role-arn"]) {
		t.Errorf("ServiceAccount %s: eks.amazonaws.com/role-arn %q is not an IAM role ARN", sa.Name, sa.Annotations["eks.amazonaws.com/role-arn"])
	}
	checkIAMPolicy(t, f)

	// Scaling: the HPA owns the replicas, on CPU; the PDB lets one go.
	if dep.Spec.Replicas != nil {
		t.Error("Deployment edge sets replicas: each apply would reset what the HorizontalPodAutoscaler chose")
	}
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, objs, "HorizontalPodAutoscaler", "edge")
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Name {
		t.Errorf("HPA scales %s %s", hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 3 {
		t.Error("HPA: want at least 3 replicas, one per zone")
	}
	cpu := false
	for _, m := range hpa.Spec.Metrics {
		cpu = cpu || (m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU)
	}
	if !cpu {
		t.Error("HPA does not scale on CPU")
	}
	pdb := get[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "edge")
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) || (pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil) {
		t.Errorf("PodDisruptionBudget edge does not bound the edge pods: %+v", pdb.Spec)
	}

	// The public Service: a load balancer on 80 and 443 that keeps the
	// client's address.
	svc := get[*corev1.Service](t, objs, "Service", "edge")
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service edge: type %s, externalTrafficPolicy %s; want LoadBalancer, Local", svc.Spec.Type, svc.Spec.ExternalTrafficPolicy)
	}
	checkServicePorts(t, svc, dep, c, "80/TCP→http", "443/TCP→https", "443/UDP→h3")
	if svc.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "" {
		t.Error("Service edge: no AWS load balancer annotations")
	}

	// The admin Service: headless, every pod (ready or not), the admin
	// port, for purge --edges-dns.
	admin := get[*corev1.Service](t, objs, "Service", "edge-admin")
	if admin.Spec.ClusterIP != corev1.ClusterIPNone || !admin.Spec.PublishNotReadyAddresses {
		t.Errorf("Service edge-admin: clusterIP %q, publishNotReadyAddresses %v; want None, true", admin.Spec.ClusterIP, admin.Spec.PublishNotReadyAddresses)
	}
	checkServicePorts(t, admin, dep, c, itoa(adminPort.ContainerPort)+"/TCP→admin")

	// The admin port is reachable only from the sources named.
	checkNetworkPolicy(t, objs, dep, c, []string{"http", "https", "h3"}, "admin")
}

// checkSecurity holds a pod to the restricted Pod Security Standard the
// namespace enforces, and a read-only root file system.
func checkSecurity(t *testing.T, what string, spec *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: the pod must run as a non-root user", what)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: no RuntimeDefault seccomp profile", what)
	}
	if sc == nil {
		t.Fatalf("%s: no container securityContext", what)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root file system not read-only", what)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: privilege escalation allowed", what)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", what)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %+v; want ALL dropped, none added", what, sc.Capabilities)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: shares the host's namespaces", what)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a Kubernetes API token it never uses", what)
	}
}

// checkServicePorts checks that svc selects dep's pods and that its
// ports are exactly want ("PORT/PROTOCOL→container port name"), each
// reaching that container port, of the same protocol.
func checkServicePorts(t *testing.T, svc *corev1.Service, dep *appsv1.Deployment, c *corev1.Container, want ...string) {
	t.Helper()
	if !selects(svc.Spec.Selector, dep.Spec.Template.Labels) {
		t.Errorf("Service %s selects %v, not the %s pods", svc.Name, svc.Spec.Selector, dep.Name)
	}
	var got []string
	for _, p := range svc.Spec.Ports {
		cp := containerPort(t, c, p.TargetPort.String())
		if cp.Protocol != p.Protocol {
			t.Errorf("Service %s port %d/%s reaches %s/%s", svc.Name, p.Port, p.Protocol, cp.Name, cp.Protocol)
		}
		got = append(got, itoa(p.Port)+"/"+string(p.Protocol)+"→"+p.TargetPort.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Service %s ports %q, want %q", svc.Name, got, want)
	}
}

// checkNetworkPolicy checks that a NetworkPolicy selecting dep's pods
// admits anyone to the public ports and the private port only from
// named sources.
func checkNetworkPolicy(t *testing.T, objs []object, dep *appsv1.Deployment, c *corev1.Container, public []string, private string) {
	t.Helper()
	var np *networkingv1.NetworkPolicy
	for _, o := range objs {
		if p, ok := o.obj.(*networkingv1.NetworkPolicy); ok && selects(p.Spec.PodSelector.MatchLabels, dep.Spec.Template.Labels) {
			np = p
		}
	}
	if np == nil {
		t.Fatalf("no NetworkPolicy selects the %s pods", dep.Name)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Fatalf("NetworkPolicy %s does not restrict ingress", np.Name)
	}
	number := func(p *intstr.IntOrString) string {
		if p.Type == intstr.String {
			return p.StrVal
		}
		for _, cp := range c.Ports {
			if cp.ContainerPort == p.IntVal {
				return cp.Name
			}
		}
		return p.String()
	}
	open := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Errorf("NetworkPolicy %s: a rule for every port", np.Name)
		}
		for _, p := range rule.Ports {
			name := number(p.Port)
			if name == private && len(rule.From) == 0 {
				t.Errorf("NetworkPolicy %s opens the %s port to everyone", np.Name, private)
			}
			if name == private {
				for _, peer := range rule.From {
					if peer.IPBlock != nil || (peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) == 0 && len(peer.NamespaceSelector.MatchExpressions) == 0) {
						t.Errorf("NetworkPolicy %s: the %s port open to %+v", np.Name, private, peer)
					}
				}
			}
			if len(rule.From) == 0 {
				open[name] = true
			}
		}
	}
	for _, p := range public {
		containerPort(t, c, p)
		if !open[p] {
			t.Errorf("NetworkPolicy %s: the public port %s is not open to everyone", np.Name, p)
		}
	}
}

func checkDnsgeo(t *testing.T, objs []object) {
	dep := get[*appsv1.Deployment](t, objs, "Deployment", "dnsgeo")
	spec := &dep.Spec.Template.Spec
	c := container(t, spec, "dnsgeo")
	if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/dnsgeo" {
		t.Errorf("dnsgeo command %q", c.Command)
	}
	f := parseArgs(t, c.Args, containerEnv(t, objs, c, downward))
	checkSecurity(t, "dnsgeo", spec, c)

	// DNS over UDP and TCP on -listen's port; the Service maps 53 to it
	// and keeps the resolver's address (dnsgeo routes on it).
	listen := port(t, f.one(t, "listen"))
	for _, name := range []string{"dns-udp", "dns-tcp"} {
		if cp := containerPort(t, c, name); cp.ContainerPort != listen {
			t.Errorf("dnsgeo -listen port %d, container port %s %d", listen, name, cp.ContainerPort)
		}
	}
	if containerPort(t, c, "dns-udp").Protocol != corev1.ProtocolUDP {
		t.Error("dnsgeo: dns-udp is not UDP")
	}
	admin := containerPort(t, c, "admin")
	if port(t, f.one(t, "admin")) != admin.ContainerPort {
		t.Errorf("dnsgeo -admin port is not the container's admin port %d", admin.ContainerPort)
	}
	svc := get[*corev1.Service](t, objs, "Service", "dnsgeo")
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service dnsgeo: type %s, externalTrafficPolicy %s; want LoadBalancer, Local", svc.Spec.Type, svc.Spec.ExternalTrafficPolicy)
	}
	checkServicePorts(t, svc, dep, c, "53/UDP→dns-udp", "53/TCP→dns-tcp")
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != intstr.FromString("admin") {
			t.Errorf("dnsgeo: want readiness and liveness on /healthz of the admin port, got %+v", p)
		}
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil ||
		spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < c.Lifecycle.PreStop.Sleep.Seconds+5 {
		t.Error("dnsgeo: want a preStop sleep and a grace period beyond it")
	}

	// Config and latency table: files of a ConfigMap whose name has no
	// hash (so the kubelet updates it in place and dnsgeo reloads it),
	// mounted without subPath, and loaded by dnsgeo's own loaders.
	dir := t.TempDir()
	for _, flag := range []string{"config", "latency"} {
		vol, key := mountedFile(t, spec, c, f.one(t, flag))
		if vol.ConfigMap == nil {
			t.Fatalf("dnsgeo -%s: volume %s is not a ConfigMap", flag, vol.Name)
		}
		cm := configMap(t, objs, vol.ConfigMap.Name)
		if cm.Name != "dnsgeo" {
			t.Errorf("dnsgeo's ConfigMap is %q: with a hash suffix, a change restarts dnsgeo instead of reloading it", cm.Name)
		}
		text, ok := cm.Data[key]
		if !ok {
			t.Fatalf("dnsgeo -%s: ConfigMap %s has no %s", flag, cm.Name, key)
		}
		os.WriteFile(filepath.Join(dir, flag), []byte(text), 0o644)
	}
	cfg, err := dnsgeo.LoadConfig(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatalf("dnsgeo.yaml: %v", err)
	}
	if _, err := dnsgeo.LoadTable(filepath.Join(dir, "latency")); err != nil {
		t.Fatalf("latency.csv: %v", err)
	}
	for name, r := range cfg.Regions {
		if r.Health == "" {
			t.Errorf("dnsgeo.yaml: region %s has no health URL: it would never be taken out", name)
		}
	}
	// No dnsgeo on a node with an edge (see the manifest: probing its own
	// region's load balancer from one of its targets fails).
	anti := false
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		edgePods := get[*appsv1.Deployment](t, objs, "Deployment", "edge").Spec.Template.Labels
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && term.LabelSelector != nil && selects(term.LabelSelector.MatchLabels, edgePods) {
				anti = true
			}
		}
	}
	if !anti {
		t.Error("dnsgeo may share a node with an edge: its probes of its own region would hairpin through the load balancer")
	}
	checkNetworkPolicy(t, objs, dep, c, []string{"dns-udp", "dns-tcp"}, "admin")
}

// bytesFlag parses a size flag as the edge does.
func bytesFlag(t *testing.T, f flags, name string) int64 {
	t.Helper()
	n, err := humanize.ParseBytes(f.one(t, name))
	if err != nil {
		t.Fatalf("-%s: %v", name, err)
	}
	return int64(n)
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// iamPolicy is the part of an IAM policy document the test reads.
type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    stringOrList
		Resource  stringOrList
		Condition map[string]map[string]stringOrList `json:",omitempty"`
	}
}

// stringOrList is an IAM field that is a string or a list of them.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(s))
}

// checkIAMPolicy checks that kubernetes/iam-policy.json lets the edge do
// what its flags ask of S3: read the origins (and list them, so a missing
// key is a 404, not a 403), read and write the certificate store and the
// ticket keys, read the purge journal and write its own registry entry.
func checkIAMPolicy(t *testing.T, f flags) {
	t.Helper()
	var p iamPolicy
	dec := json.NewDecoder(strings.NewReader(string(readFile(t, "kubernetes/iam-policy.json"))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("iam-policy.json: %v", err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("iam-policy.json: Version %q", p.Version)
	}
	allowed := func(action, arn string) bool {
		for _, s := range p.Statement {
			if s.Effect != "Allow" || !slices.Contains(s.Action, action) {
				continue
			}
			for _, r := range s.Resource {
				if iamMatch(r, arn) {
					return true
				}
			}
		}
		return false
	}
	listsPrefix := func(bucket, prefix string) bool {
		for _, s := range p.Statement {
			if s.Effect != "Allow" || !slices.Contains(s.Action, "s3:ListBucket") || !slices.Contains(s.Resource, "arn:aws:s3:::"+bucket) {
				continue
			}
			like := s.Condition["StringLike"]["s3:prefix"]
			if len(s.Condition) == 0 {
				return true
			}
			for _, l := range like {
				if iamMatch(l, prefix+"x") {
					return true
				}
			}
		}
		return false
	}
	s3url := func(flag, v string) (bucket, prefix string) {
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "s3" {
			t.Fatalf("-%s=%s: want an s3:// URL in production", flag, v)
		}
		prefix = strings.Trim(u.Path, "/")
		if prefix != "" {
			prefix += "/"
		}
		return u.Host, prefix
	}
	need := func(flag string, actions []string, sub string, list bool) {
		for _, v := range f.values[flag] {
			bucket, prefix := s3url(flag, v)
			obj := "arn:aws:s3:::" + bucket + "/" + prefix + sub + "some-object"
			for _, a := range actions {
				if !allowed(a, obj) {
					t.Errorf("iam-policy.json: -%s=%s needs %s on %s", flag, v, a, obj)
				}
			}
			if list && !listsPrefix(bucket, prefix) {
				t.Errorf("iam-policy.json: -%s=%s needs s3:ListBucket on %s for the prefix %q", flag, v, bucket, prefix)
			}
		}
	}
	need("origin", []string{"s3:GetObject"}, "", true)
	need("cert-cache", []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, "", true)
	need("ticket-keys", []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, "", true)
	need("purge-journal", []string{"s3:GetObject"}, "", true)
	need("purge-journal", []string{"s3:PutObject"}, "edges/", false)
}

// iamMatch matches s against an IAM pattern: * is any run of characters
// ("/" included), ? any one.
func iamMatch(pattern, s string) bool {
	re := regexp.QuoteMeta(pattern)
	re = strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(re)
	return regexp.MustCompile("^" + re + "$").MatchString(s)
}
