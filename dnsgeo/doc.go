// Package dnsgeo is an authoritative DNS server that answers each query
// for a routed name with the addresses of the region that is fastest
// for the client and healthy right now. It replaces latency-based
// routing with failover health checks of a managed DNS service, and
// fails over in seconds rather than minutes.
//
// A query flows like this:
//
//  1. A UDP loop or a TCP connection reads the packet and hands its
//     bytes to Server.respond, the one request path. There is a UDP
//     socket and loop per CPU (SO_REUSEPORT), each reading and writing
//     up to 64 datagrams per system call (recvmmsg, sendmmsg). respond
//     screens the header: responses are ignored, other opcodes get
//     NOTIMP, not one plain question FORMERR (with the question and the
//     OPT record when they can be read). miekg/dns parses the rest.
//  2. respond takes the current snapshot (config, zone, latency
//     table, health) with one atomic load; reloads swap snapshots, so a
//     query never sees half of a change.
//  3. The question is checked (class IN, in the zone, EDNS version 0,
//     a well-formed Client Subnet option) and looked up in the zone:
//     SOA, NS and static records are answered as configured, CNAMEs
//     inside the zone are followed, names that do not exist get
//     NXDOMAIN and names without the type NODATA, both with the SOA.
//  4. For a routed name, the client's network is the ECS prefix when the
//     resolver sent one (RFC 7871), else the resolver's address. A
//     longest-prefix match in the Table gives a preference order of
//     regions (fastest first); the first region not down answers. No
//     match: the configured default order. Every region down: all of
//     them. With Config.Fallback, the first address of the next region
//     up in that order follows the answer's own, for browsers to try
//     when the first region refuses or hangs. The ECS option is echoed
//     with the scope of the answer.
//  5. UDP responses, errors included, are rate limited per client
//     network (RRL) and cut to the client's buffer: an answer that does
//     not fit is sent empty with TC set, and the client retries over TCP.
//     The reply is packed with its names in lower case, and the query's
//     spelling of the question is copied back (0x20).
//
// That is the reference path. Most queries never take it: when a
// snapshot is made, compile runs it on a query for every name and type
// that has an answer of its own (and every region, for routed names)
// and keeps the packed replies; the fast path (fast.go) reads the
// query's bytes, finds the reply, copies it and patches the ID, the RD
// and CD bits, the question and the OPT record (ECS echo and scope,
// Extended DNS Error), with no allocation. What it does not handle
// (other classes and opcodes, compressed question names, options other
// than ECS, NSID, COOKIE and PADDING, every region down, anything
// malformed) goes to the reference path, and FuzzFastPath holds the two
// to the same bytes for any packet.
//
// Health comes from a Prober that fetches every region's health URL on
// an interval; a region is down after Fall consecutive failures and up
// after Rise successes. With the defaults (2 s, fall 2) a dead edge
// stops receiving new answers within 4 s (plus the probe timeout when
// it hangs rather than refuses), and resolvers drop cached answers
// within the answer TTL (20 s).
//
// Every answer is a pure function of the config, the table, the health
// state and the query, so several dnsgeo servers listed as the zone's
// NS answer alike for a client: each probes on its own, and ties are
// broken by region name, never at random.
//
// A minimal program:
//
//	cfg, _ := dnsgeo.LoadConfig("dnsgeo.yaml")
//	table, _ := dnsgeo.LoadTable("latency.csv")
//	srv, _ := dnsgeo.New(cfg, table, dnsgeo.Options{})
//	go srv.Run(ctx) // health probes
//	pc, ln, _ := dnsgeo.Listen("127.0.0.1:8053")
//	srv.Serve(ctx, pc, ln, nil)
//
// Run does all of that plus the admin listener and reloads; it is what
// cmd/dnsgeo calls.
package dnsgeo
