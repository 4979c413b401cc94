// Package lab runs the whole CDN on one machine, the way it is deployed,
// and measures it: regions, browsers, a release, and the faults
// operators meet. cmd/edge-lab is its command line; its short form is
// part of the test suite.
//
// A run builds a world (world.go), runs scenarios in it (scenarios.go)
// and writes a report (report.go, chart.go):
//
//  1. The network (network.go, netns.go). As root, each region is a
//     network namespace on a bridge, with a veth whose link the lab can
//     cut, and each region's browsers are a namespace of their own.
//     Without namespaces (not root, no CAP_NET_ADMIN), every region gets
//     loopback addresses instead (127.0.1.x, 127.0.2.x, …) and the
//     report states what that mode cannot show.
//  2. Latency is injected in user space (proxy.go): every path from one
//     namespace to another region's addresses goes through a proxy the
//     lab runs inside the source namespace, which delays it by half the
//     round trip of the matrix each way (toxiproxy's latency toxic on
//     TCP, a small delayer for DNS over UDP). A connect completes at the
//     proxy, so the lab times a connection to the first byte of the
//     server's answer, not the SYN's round trip alone.
//  3. The parts are the real binaries (procs.go), started as processes in
//     their namespaces: versitygw (S3) with a primary and a replica
//     bucket, Pebble (ACME), one or two edges per region sharing a
//     certificate store and a purge journal on S3, one dnsgeo per region
//     with the same config, and the purge CLI for releases. Each edge
//     reaches S3 through a counting proxy (s3proxy.go), so S3 requests
//     are counted at the S3 side and S3 can fail on cue.
//  4. The latency table dnsgeo loads is measured by the lab: each browser
//     population times connections to every region.
//  5. Browsers (client.go) resolve the CDN's name through dnsgeo from
//     their own address, honour the answer's TTL, try its addresses in
//     order with a connect timeout, fetch the widget and a tenant config
//     over HTTPS with a browser's headers, and check every body byte for
//     byte against the versions the lab uploaded.
//
// Every process, namespace, link, proxy and file a run creates is
// removed when it ends, on failure and on interrupt too; namespaces left
// by a run that was killed are removed by the next one.
package lab
