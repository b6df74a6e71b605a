"""`bench capacity`: each pipeline's highest sustainable rate, why it broke, and the ceilings.

A step offers one steady open-loop rate with the project's own load generator, skips its warm-up
and judges its measured window against the service level of harness/limits/capacity.yaml (data):
API p99, error ratio, and for async the delivery capacity (the Kafka backlog does not grow). The
search doubles from a start rate until a step breaks, then bisects between the last rate that held
and the first that broke, like OpenMessaging Benchmark's max-rate mode but with warm-up excluded,
steps long enough to be stable, and every step kept.

A step whose load generator fell behind (harness/limits/generator.yaml) is *generator-bound*:
it ends the search like a broken step, but the answer then says "generator-bound" and the
pipeline's own limit stays unknown above the last rate that held. A breach that remains once the
generator's lag is taken out (service latency from the actual start, errors, backlog growth) is
the pipeline's, whatever the generator did.

The result (report.CapacityReport) goes to runs/<id>/capacity.json, and to
<state dir>/capacity-<host>-<runtime>.json: the last capacity of this machine and stack, which
load profiles' capacity-relative rates ("0.3 x sync") are resolved from.

The modules, bottom up: config (the service level and search settings, harness/limits/capacity.yaml),
step (one measured window and its verdict), search (the doubling, bisection and replays, no stack),
report (capacity.json and what it derives), runner (plays a step on the real stack), command
(`bench capacity`: the searches, the tracing costs and the ceilings on one stack). What the
capacities are divided by: cpu (CPU per process tree, from /proc), ceilings (what one is), measured
by ceilings_http (wrk), ceilings_grpc (bare grpc.aio loops, with bare_grpc_server) and ceilings_kafka
(Kafka's own tools and bare aiokafka loops), generator_cost (the load
generator's CPU per request next to wrk's, with wakeup_probe pricing one wakeup beside it), and
service_profile (where each service's CPU goes under wrk, by py-spy).
"""
