// Package deploy holds no code: it is where the tests of the deployment
// files beside it live, so that `go test ./...` checks them like code.
//
//   - kubernetes/: every kustomize overlay is built with the kustomize API
//     and each object decoded strictly into its Kubernetes type (an
//     unknown field or a wrong type fails), then held to what running the
//     edge needs: probes on real endpoints, ports that match the flags, a
//     locked-down security context, a grace period that covers the
//     shutdown, a cache volume larger than -disk, memory from the bench's
//     figures, an IAM policy that covers every bucket the flags name.
//   - prometheus/: promtool checks the rules and runs their unit tests
//     (skipped, saying so, without promtool); every alert is shown firing
//     and not firing and links a runbook section that exists.
//   - grafana/: the dashboard parses and its queries are valid PromQL.
//   - Every metric the rules, their tests and the dashboard name is found
//     in a /metrics scrape of a real edge and a real dnsgeo, started with
//     the Deployment's own flags and config files: a renamed metric breaks
//     a test, not the pager.
package deploy
