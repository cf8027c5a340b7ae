"""goldrush_sim: a local simulator of the GoldRush Pipeline REST API.

Used by the operator's test suites (through `tests/support/sim.py`) and by people developing
against the API locally (`goldrush-sim` command, see docs/simulator.md).

Modules: `config` (SimConfig options), `model` (validation, masking, failure rules), `state`
(store and lazy phase machine), `faults` (fault injection), `journal` (request journal and
counters), `persist` (--state-file), `app` (Pipeline API routes, `make_app`), `admin`
(`/_sim/` API), `cli` (the command).

Behaviour chosen where the API documentation is silent (also in docs/simulator.md):

 1. Errors: `{"data": null, "error": true, "error_message": <text>, "error_code": "<HTTP status>"}`.
 2. Status codes: create 201 (`--create-status 200`), delete 204 without body; 400 for a body
    that is not JSON or not an object and for bad `page_number`/`page_size`; 422 for field
    validation (missing, wrong type, bad enum, kafka with transforms, `******`, immutable
    fields); 401 missing/unknown/revoked key or non-Bearer scheme; 403 regular API key; 404
    unknown id, another group's pipeline, unknown path, path without trailing slash; 405
    wrong method on a known path; 409 PUT/PATCH on a pipeline inside its --delete-seconds window.
 3. Order of checks: injected faults, then authentication, then routing (404/405), then validation.
 4. Required on create: name, project, topic, destination_type, destination_config,
    execution_mode. Defaults: description "", transforms {}, execution_start_from "",
    execution_stop_from "", abi_file {}, abi_contract_addresses [], abi_unmatched "", status running.
 5. `null` is never a valid value (null required field = missing). Block heights may be sent
    as integers and are stored as strings. topic is any non-empty string (no pattern check),
    abi_unmatched any string, bounded pipelines do not need a stop block, the inner fields of
    destination_config are not validated; if `destination_config.type` is sent it must equal
    destination_type (it is never added when absent).
 6. Unknown and read-only fields are ignored on create and PATCH. Names are not unique; there
    is no idempotency key.
 7. Secrets: values of keys named `password` or `secret_access_key` at any depth of
    destination_config (covers `sasl.password`) and every value of a `headers` object; shown
    as `******` on every read. user, access_key_id and URLs are not secret.
 8. A string value `******` anywhere in a create/PUT/PATCH body is rejected (422, names the path).
 9. PUT requires `status` and ignores all other fields. PATCH replaces each given top-level
    field wholesale (`--patch-merge deep` merges objects recursively, lists still replace).
    Changing project/topic/destination_type/execution_mode is 422 (`--immutable-patch ignore`
    drops them silently); sending the stored value is accepted. A rejected request changes nothing.
10. updated_at is bumped by every successful PUT/PATCH, even without a change. Timestamps are
    UTC, second precision, `Z` suffix.
11. List items are full objects ordered by (created_at, id) - with second precision, pipelines
    created in the same second are ordered by id. Default page_size 10, maximum 100 (larger is
    clamped), pages past the end are empty, has_more = page_number*page_size < total_count,
    `data.updated_at` is the time of the answer.
12. group object: id from the key's group, name and slug derived from it (`group_acme_x` ->
    `acme-x`), is_paid true, is_over_limit and is_free_trial_expired false. created_by is a
    deterministic user derived from the key.
13. Phases (lazy, wall clock): create running -> DEPLOYING (deploy-seconds) -> RUNNING, or
    FAILED when a transform is not a single SELECT, a destination host ends in `.invalid`
    (url, queue_url, endpoint, any bootstrap server) or kafka has a non-empty abi_file;
    bounded -> STOPPED after bounded-run-seconds of RUNNING; create paused -> PAUSED. Pause
    -> STOPPING (stop-seconds) -> PAUSED (also from DEPLOYING, FAILED, STOPPED). Resume, or a
    PATCH that changes a field other than name/description while the intent is running,
    redeploys. Setting the status it already has does nothing (a FAILED pipeline restarts
    only by pause+resume or a config change). PATCH while paused never deploys. FAILED does not
    auto-restart and the intent `status` never changes by itself.
14. Status: replicas/ready DEPLOYING 1/0, RUNNING 1/1, FAILED 1/0, STOPPING, PAUSED, STOPPED 0/0.
    start_time = start of the most recent deploy, null if never deployed.
15. Logs: one pod, named ("pipeline-" + uid)[:58] + 5 random [a-z0-9], new name per deploy.
    RUNNING: a few INFO lines; FAILED: the reason as last line; any other phase:
    `unable to upgrade connection: container not found`. A log line forced through the admin
    API is appended as the last line.
16. Metrics while RUNNING: 100 records/s (records_consumed, last_offset equal), block height =
    execution_start_from (or 30000000) + 0.5/s (0 before the first record), pending_records 25,
    processing_delay_ms 1500, records_per_second 100.0 (a float), normalization_errors 0. Other
    phases freeze the counters (rates 0); every deploy resets them. Fields set through the admin API
    (`POST /_sim/pipelines/{id}/metrics`) are answered as set until the next deploy.
17. destination-health: `{healthy, last_error}` only; unhealthy with "connection refused" once an
    unreachable destination has been probed (end of DEPLOYING), else healthy with last_error
    null. An admin override holds until the next deploy.
18. DELETE is immediate; with --delete-seconds the pipeline stays readable (and listed) in
    phase STOPPING for that long, PUT/PATCH answer 409, DELETE again answers 204.
19. Without a trailing slash every path answers 404 (no redirect).
20. Faults: latency, then a 429 burst, then the per-key requests/second token bucket, then
    error rules. 429s carry Retry-After in whole seconds (rps limit: at least 1; rules: 1 unless
    given). Any request by a key that arrives after a 429 with Retry-After was sent to that key
    and before it expired is an early retry, whatever its answer (the window opens when the 429
    is sent, after any added latency, so requests already in flight are not counted). Faults
    never touch `/_sim/`, nor paths that match no route. drop/delay-after-
    commit apply only to successful writes (create, put, patch, delete); echo-in-422 applies to
    create/put/patch requests with a body, before validation, and commits nothing.
21. Journal: Pipeline API requests only (also 401/404 ones, never `/_sim/`); `time` is Unix
    epoch seconds (float); `path` without the query string, which is in `query`; `fault` names
    an injected fault; a body that is not JSON is stored as `sha256:<hex of the raw bytes>`.
22. Admin seeding uses the create validation; out-of-band PATCH sets write fields without
    validation and bumps updated_at.
23. --state-file keeps pipelines and their runtime (phases continue by wall clock); keys,
    faults, journal and counters are not persisted. The file holds secrets in clear (mode 0600).
24. `--service-key KEY=GROUP` splits at the last `=`; a key ending in `=` keeps group_default.
"""
