#!/usr/bin/env python3
"""End-to-end test of the dialer.v1 control API, as a call centre's own system would use it.

Run by tests/grpc.rs (the `integration` test crate), which starts `dialer simulate` and
`dialer serve`; stubs are generated from proto/dialer/v1 by scripts/setup-grpc-py.sh.

    PYTHONPATH=tests/grpc/gen python tests/grpc/e2e.py --addr 127.0.0.1:50051 --token T \
        --metrics http://127.0.0.1:9464/metrics --workdir /tmp/x

Protocol with the driver (stdout carries only these lines; logs go to stderr):
    RESTART <seq>    the script wants `dialer serve` restarted now (seq: last result seen)
    <- RESTARTED     (stdin) the server is back on the same address
    DONE <json>      every check passed; a summary

Without a driver (--no-restart) the restart step is skipped.
Every wait is bounded; a failed check raises and the script exits 1.
"""

import argparse
import csv
import io
import json
import queue
import re
import sys
import threading
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dialer.v1 import campaign_pb2 as cpb
from dialer.v1 import campaign_pb2_grpc as cgrpc
from dialer.v1 import compliance_pb2 as kpb
from dialer.v1 import compliance_pb2_grpc as kgrpc
from dialer.v1 import results_pb2 as rpb
from dialer.v1 import results_pb2_grpc as rgrpc
from dialer.v1 import scripts_pb2 as spb
from dialer.v1 import scripts_pb2_grpc as sgrpc

RPC_TIMEOUT = 15  # seconds, every unary call
START = time.monotonic()


def log(*args):
    print(f"[e2e {time.monotonic() - START:6.1f}s]", *args, file=sys.stderr, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    log("ok:", what)


def expect_code(code, fn, what):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, f"{what}: {e.code().name} ({e.details()})")
        return e
    raise AssertionError(f"{what}: succeeded, expected {code.name}")


class Api:
    def __init__(self, addr, token):
        self.addr = addr
        self.token = token
        self.connect()

    def connect(self):
        self.channel = grpc.insecure_channel(
            self.addr, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self.campaigns = cgrpc.CampaignServiceStub(self.channel)
        self.results = rgrpc.ResultServiceStub(self.channel)
        self.compliance = kgrpc.ComplianceServiceStub(self.channel)
        self.scripts = sgrpc.ScriptServiceStub(self.channel)

    @property
    def md(self):
        return [("authorization", f"Bearer {self.token}")]


# --------------------------------------------------------------------------------------------
# Prometheus text format (0.0.4): every line a comment, blank, or `name{labels} value [ts]`.
METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'  # name
    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,\s*)?)*\})?'  # labels
    r'\s+(\S+)(?:\s+(-?\d+))?$'  # value, timestamp
)


def parse_prometheus(text):
    samples = {}
    types = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                check_type = parts[3].strip()
                if check_type not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise AssertionError(f"metrics line {n}: bad TYPE {check_type!r}")
                types[parts[2]] = check_type
            continue
        m = METRIC_LINE.match(line)
        if not m:
            raise AssertionError(f"metrics line {n} does not parse: {line!r}")
        value = m.group(3)
        float(value)  # NaN, +Inf parse too
        samples.setdefault(m.group(1), []).append((m.group(2) or "", float(value)))
    return samples, types


# --------------------------------------------------------------------------------------------
class ResultFollower(threading.Thread):
    """Streams results from a cursor, reconnecting after errors with the last seq seen."""

    def __init__(self, api, campaign_id):
        super().__init__(daemon=True)
        self.api = api
        self.campaign_id = campaign_id
        self.cursor = 0
        self.seqs = []  # every delivery, duplicates included
        self.ids = {}  # seq -> result id
        self.reconnects = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.call = None

    def run(self):
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.call = self.api.results.StreamResults(
                    rpb.StreamResultsRequest(campaign_id=self.campaign_id, after_seq=self.cursor),
                    metadata=self.api.md,
                )
                for r in self.call:
                    with self.lock:
                        self.seqs.append(r.seq)
                        if r.seq in self.ids and self.ids[r.seq] != r.id:
                            raise AssertionError(f"seq {r.seq} came with two ids")
                        self.ids[r.seq] = r.id
                        self.cursor = max(self.cursor, r.seq)
            except grpc.RpcError as e:
                if self.stop.is_set():
                    return
                self.reconnects += 1
                log(f"result stream broke ({e.code().name}); resuming after seq {self.cursor}")
                time.sleep(0.3)

    def seen(self):
        with self.lock:
            return len(self.ids), self.cursor

    def finish(self):
        self.stop.set()
        if self.call is not None:
            self.call.cancel()
        self.join(timeout=10)


def stdin_lines():
    q = queue.Queue()

    def pump():
        for line in sys.stdin:
            q.put(line.strip())
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def retry(fn, what, bound=60):
    """Calls fn until it does not fail with UNAVAILABLE (a restarting server), bounded."""
    deadline = time.monotonic() + bound
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            log(f"{what}: server unavailable, retrying")
            time.sleep(0.5)


# --------------------------------------------------------------------------------------------
GOOD_NUMBERS = [f"+38044{n:07d}" for n in range(1230001, 1230001 + 40)]


def contacts_csv(n):
    """n good rows (with consent), plus the bad rows whose errors the import must report."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["phone", "name", "timezone", "consent_source", "consent_at",
                "consent_text_version", "crm_id"])
    rows = []
    for i, phone in enumerate(GOOD_NUMBERS[:n]):
        # Every other number written the local way (region UA).
        shown = phone if i % 2 == 0 else "0" + phone[4:]
        rows.append([shown, f"Контакт {i}", "Europe/Kyiv", "web_form",
                     "2025-01-15T10:00:00Z", "v3", f"CRM-{i}"])
    bad = {
        # row number in the file (1-based data rows) -> (row, expected field)
        3: (["12345", "Bad Number", "", "web_form", "2025-01-15T10:00:00Z", "v3", "x"], "phone"),
        7: ([GOOD_NUMBERS[n], "Bad Zone", "Mars/Olympus", "web_form", "2025-01-15T10:00:00Z",
             "v3", "x"], "timezone"),
        11: ([GOOD_NUMBERS[n + 1], "No Consent Time", "", "web_form", "", "v3", "x"],
             "consent_at"),
        15: ([GOOD_NUMBERS[n + 2], "Bad Source", "", "carrier_pigeon", "2025-01-15T10:00:00Z",
              "v3", "x"], "consent_source"),
    }
    expected = []
    for row_no in sorted(bad):
        row, field = bad[row_no]
        rows.insert(row_no - 1, row)
        expected.append((row_no, field))
    # A duplicate of the first number at the end: merged, not an error.
    rows.append([GOOD_NUMBERS[0], "Контакт 0 (again)", "", "", "", "", "CRM-0b"])
    for r in rows:
        w.writerow(r)
    return out.getvalue().encode("utf-8"), expected, len(rows)


def settings(trunk):
    day = ["00:00-24:00"]
    return cpb.CampaignSettings(
        policy=cpb.Policy(
            default_tz="Europe/Kyiv",
            window=cpb.CallingWindow(mon=day, tue=day, wed=day, thu=day, fri=day, sat=day,
                                     sun=day),
            # Short retries so that the whole campaign ends within the test (the defaults
            # wait minutes to hours); answers and machines end the contact.
            retry={
                "busy": cpb.RetryRule(delay="2s", max_attempts=3),
                "no_answer": cpb.RetryRule(delay="2s", max_attempts=2),
                "failed": cpb.RetryRule(delay="2s", max_attempts=3),
                "interrupted": cpb.RetryRule(delay="1s", max_attempts=3),
                "no_input": cpb.RetryRule(delay="2s", max_attempts=2),
                "unclassified": cpb.RetryRule(done=True),
                "voicemail": cpb.RetryRule(done=True),
                "rejected": cpb.RetryRule(done=True),
            },
            # The default caps keep 5 minutes between two calls of a contact.
            caps=cpb.Caps(max_per_day=10, min_gap="1s"),
        ),
        trunks=[cpb.TrunkUse(name=trunk, weight=1)],
        cps=10.0,
        channels=8,
        language="ru",
        default_region="UA",
        ring_timeout_secs=10,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--metrics", required=True, help="URL of /metrics")
    ap.add_argument("--trunk", default="sim")
    ap.add_argument("--contacts", type=int, default=24)
    ap.add_argument("--no-restart", action="store_true")
    ap.add_argument("--finish-bound", type=float, default=240.0)
    args = ap.parse_args()
    api = Api(args.addr, args.token)
    summary = {}

    # -- health and reflection (open without a token) ----------------------------------------
    health = health_pb2_grpc.HealthStub(api.channel)
    for svc in ["", "dialer.v1.CampaignService", "dialer.v1.ResultService",
                "dialer.v1.ComplianceService", "dialer.v1.ScriptService"]:
        r = retry(lambda: health.Check(health_pb2.HealthCheckRequest(service=svc),
                                       timeout=RPC_TIMEOUT), "health")
        check(r.status == health_pb2.HealthCheckResponse.SERVING, f"health {svc!r} SERVING")
    refl = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    resp = list(refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=RPC_TIMEOUT))
    services = sorted(s.name for s in resp[0].list_services_response.service)
    log("reflection lists:", services)
    for want in ["dialer.v1.CampaignService", "dialer.v1.ResultService",
                 "dialer.v1.ComplianceService", "dialer.v1.ScriptService",
                 "grpc.health.v1.Health"]:
        check(want in services, f"reflection lists {want}")
    # The descriptor of a service resolves, with its methods.
    resp = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="dialer.v1.CampaignService")]), timeout=RPC_TIMEOUT))
    check(len(resp[0].file_descriptor_response.file_descriptor_proto) >= 1,
          "reflection returns the file of dialer.v1.CampaignService")
    summary["reflection"] = services

    # -- auth: nothing is executed without the right token ----------------------------------
    before = len(api.campaigns.ListCampaigns(cpb.ListCampaignsRequest(), metadata=api.md,
                                             timeout=RPC_TIMEOUT).campaigns)
    req = cpb.CreateCampaignRequest(name="no auth", script="actualization",
                                    settings=settings(args.trunk))
    expect_code(grpc.StatusCode.UNAUTHENTICATED,
                lambda: api.campaigns.CreateCampaign(req, timeout=RPC_TIMEOUT),
                "CreateCampaign without a token is UNAUTHENTICATED")
    expect_code(grpc.StatusCode.UNAUTHENTICATED,
                lambda: api.campaigns.CreateCampaign(
                    req, metadata=[("authorization", "Bearer wrong-token")],
                    timeout=RPC_TIMEOUT),
                "CreateCampaign with a wrong token is UNAUTHENTICATED")
    expect_code(grpc.StatusCode.UNAUTHENTICATED,
                lambda: api.compliance.OptOut(kpb.OptOutRequest(phone=GOOD_NUMBERS[0]),
                                              timeout=RPC_TIMEOUT),
                "OptOut without a token is UNAUTHENTICATED")
    after = len(api.campaigns.ListCampaigns(cpb.ListCampaignsRequest(), metadata=api.md,
                                            timeout=RPC_TIMEOUT).campaigns)
    check(after == before, "the refused calls created nothing")

    # -- scripts ------------------------------------------------------------------------------
    bad = 'script]\nname = "x"\n'
    v = api.scripts.ValidateScript(spb.ValidateScriptRequest(text=bad, name="x",
                                                              skip_prompt_files=True),
                                   metadata=api.md, timeout=RPC_TIMEOUT)
    check(not v.valid and v.errors and v.errors[0].line == 1,
          f"ValidateScript reports line/col: {v.errors[0].line}:{v.errors[0].column} "
          f"{v.errors[0].kind}: {v.errors[0].message}")
    listed = api.scripts.ListScripts(spb.ListScriptsRequest(), metadata=api.md,
                                     timeout=RPC_TIMEOUT)
    check(any(s.name == "actualization" and s.version_id for s in listed.scripts),
          "ListScripts has actualization with a version id")

    # -- create: validation names the field, then a real campaign ----------------------------
    bad_settings = settings("no-such-trunk")
    e = expect_code(grpc.StatusCode.INVALID_ARGUMENT,
                    lambda: api.campaigns.CreateCampaign(
                        cpb.CreateCampaignRequest(name="x", script="actualization",
                                                  settings=bad_settings),
                        metadata=api.md, timeout=RPC_TIMEOUT),
                    "an unknown trunk is INVALID_ARGUMENT")
    check(e.details().startswith("settings.trunks[0].name"), f"names the field: {e.details()}")
    bad_settings = settings(args.trunk)
    bad_settings.policy.retry["busy"].delay = "soonish"
    e = expect_code(grpc.StatusCode.INVALID_ARGUMENT,
                    lambda: api.campaigns.CreateCampaign(
                        cpb.CreateCampaignRequest(name="x", script="actualization",
                                                  settings=bad_settings),
                        metadata=api.md, timeout=RPC_TIMEOUT),
                    "a bad retry delay is INVALID_ARGUMENT")
    check(e.details().startswith("settings.policy.retry"), f"names the field: {e.details()}")
    c = api.campaigns.CreateCampaign(
        cpb.CreateCampaignRequest(name="e2e survey", script="actualization",
                                  settings=settings(args.trunk),
                                  consent_mode=cpb.CONSENT_MODE_REQUIRED),
        metadata=api.md, timeout=RPC_TIMEOUT)
    check(c.id > 0 and c.state == cpb.CAMPAIGN_STATE_DRAFT, f"campaign {c.id} created as draft")
    check(c.script_version.startswith("2025"), f"script version {c.script_version}")

    # -- import: CSV in chunks, bad rows reported with row and field --------------------------
    data, expected_errors, rows = contacts_csv(args.contacts)

    def chunks():
        yield cpb.ImportContactsRequest(header=cpb.ImportHeader(campaign_id=c.id,
                                                                default_region="UA"))
        for i in range(0, len(data), 997):
            yield cpb.ImportContactsRequest(csv_chunk=data[i:i + 997])

    r = api.campaigns.ImportContacts(chunks(), metadata=api.md, timeout=60)
    log("import:", r.rows_read, "read,", r.imported, "imported,", r.duplicates_merged, "merged,",
        r.errors_total, "errors:", [(e.row, e.field, e.reason) for e in r.errors])
    check(r.rows_read == rows, f"rows read {r.rows_read} == {rows}")
    check(r.imported == args.contacts, f"imported {r.imported} == {args.contacts}")
    check(r.duplicates_merged == 1, "the repeated number was merged")
    check(r.errors_total == len(expected_errors), f"{r.errors_total} bad rows")
    check([(e.row, e.field) for e in r.errors] == expected_errors,
          f"row errors name row and field: {[(e.row, e.field) for e in r.errors]}")
    check(r.consents_recorded >= args.contacts, "consents recorded with the rows")
    summary["import"] = {"rows": r.rows_read, "imported": r.imported,
                         "errors": [(e.row, e.field) for e in r.errors]}

    # -- start, watch, stream results across a server restart ---------------------------------
    s = api.campaigns.StartCampaign(cpb.StartCampaignRequest(campaign_id=c.id),
                                    metadata=api.md, timeout=RPC_TIMEOUT)
    check(s.state == cpb.CAMPAIGN_STATE_RUNNING, "campaign running")
    follower = ResultFollower(api, c.id)
    follower.start()
    stdin = None if args.no_restart else stdin_lines()
    restarted = args.no_restart
    deadline = time.monotonic() + args.finish_bound
    last = None
    updates = 0
    while time.monotonic() < deadline:
        try:
            for p in api.campaigns.WatchCampaign(
                    cpb.WatchCampaignRequest(campaign_id=c.id, interval_ms=500),
                    metadata=api.md, timeout=max(1.0, deadline - time.monotonic())):
                last = p
                updates += 1
                n, cursor = follower.seen()
                cc = p.contacts
                log(f"watch: {cpb.CampaignState.Name(p.state)} pending={cc.pending} "
                    f"in_progress={cc.in_progress} done={cc.done} live={p.live_calls} "
                    f"dialled={p.dialled} cph={p.calls_per_hour:.0f} results_seen={n}")
                if not restarted and n >= 3:
                    print(f"RESTART {cursor}", flush=True)
                    line = stdin.get(timeout=120)
                    check(line == "RESTARTED", f"driver restarted the server ({line})")
                    restarted = True
                    summary["restart_after_seq"] = cursor
                    break  # the watch stream died with the server; open a new one
                if cc.pending == 0 and cc.in_progress == 0 and p.live_calls == 0 and \
                        cc.total > 0:
                    break
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                break
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
                raise
            log(f"watch broke ({e.code().name}), reconnecting")
            time.sleep(0.5)
            continue
        if last is not None and restarted and last.contacts.pending == 0 and \
                last.contacts.in_progress == 0 and last.live_calls == 0:
            break
    check(restarted, "the server was restarted mid-campaign")
    check(last is not None and last.contacts.pending == 0 and last.contacts.in_progress == 0,
          f"every contact done within {args.finish_bound} s")
    check(updates >= 2, f"watch sent progress ({updates} updates)")

    # Everything committed, read in one go from the start, must equal what the live (resumed)
    # stream delivered: no gaps, nothing lost (duplicates allowed: at least once).
    all_results = list(retry(lambda: list(api.results.StreamResults(
        rpb.StreamResultsRequest(campaign_id=c.id, after_seq=0, stop_at_end=True),
        metadata=api.md, timeout=60)), "stream all"))
    full = [r.seq for r in all_results]
    check(len(full) > 0, f"{len(full)} results stored")
    # Seqs are global (gap-free over all campaigns); this is the only campaign.
    check(full == list(range(full[0], full[0] + len(full))), "stored seqs have no gaps")
    settle = time.monotonic() + 15
    while follower.seen()[1] < full[-1] and time.monotonic() < settle:
        time.sleep(0.2)
    follower.finish()
    got = set(follower.seqs)
    missing = sorted(set(full) - got)
    check(not missing, f"the resumed stream missed nothing (missing: {missing[:10]})")
    check(all(follower.ids[r.seq] == r.id for r in all_results), "stable ids per seq")
    dups = len(follower.seqs) - len(got)
    log(f"stream: {len(follower.seqs)} deliveries, {len(got)} distinct, {dups} duplicates, "
        f"{follower.reconnects} reconnects")
    check(args.no_restart or follower.reconnects >= 1, "the stream reconnected after the restart")
    summary["results"] = {"count": len(full), "duplicates": dups,
                          "reconnects": follower.reconnects}

    # -- report ---------------------------------------------------------------------------------
    rep = api.results.GetReport(rpb.GetReportRequest(campaign_id=c.id), metadata=api.md,
                                timeout=RPC_TIMEOUT)
    k = rep.kpis
    log("report:", {s.name: s.count for s in rep.categories}, {s.name: s.count for s in rep.outcomes},
        f"reach={k.reach_rate:.2f} conv={k.manager_call_conversion:.2f} "
        f"optout={k.opt_out_rate:.2f} aht={k.average_handle_time_secs:.1f}s "
        f"cph={k.calls_per_hour:.0f} asr={k.asr_coverage:.2f}")
    check(rep.results == len(full), f"report counts {rep.results} results")
    check(sum(s.count for s in rep.outcomes) == rep.results, "outcome counts add up")
    check(abs(sum(s.share for s in rep.outcomes) - 1.0) < 1e-6, "outcome shares add up to 1")
    check(rep.categories, "answers were categorised")
    check(0.0 < k.reach_rate <= 1.0, f"reach rate {k.reach_rate:.2f}")
    check(k.dialled_contacts == args.contacts, f"{k.dialled_contacts} contacts dialled")
    check(k.calls_per_hour > 0, "calls per hour")
    summary["report"] = {"categories": {s.name: s.count for s in rep.categories},
                         "outcomes": {s.name: s.count for s in rep.outcomes},
                         "reach_rate": k.reach_rate}

    # -- opt-out by number in local format; then the number is suppressed ---------------------
    # A reached number that did not opt out by itself, written the local way.
    victim = next(r.phone for r in all_results if r.phone and r.category != "opt_out")
    check(victim in GOOD_NUMBERS, "results carry the imported numbers")
    local = "0" + victim[4:]
    o = api.compliance.OptOut(kpb.OptOutRequest(phone=local, region="UA",
                                                reason="customer asked by e-mail"),
                              metadata=api.md, timeout=RPC_TIMEOUT)
    check(o.contacts_erased >= 1, f"opt-out erased {o.contacts_erased} contact(s)")
    chk = api.compliance.CheckNumber(kpb.CheckNumberRequest(phone=victim), metadata=api.md,
                                     timeout=RPC_TIMEOUT)
    check(chk.suppressed and chk.e164 == victim, "CheckNumber: suppressed")
    check(not chk.consent_on_record, "CheckNumber: no live consent after the opt-out")
    # Results of erased contacts carry no number: any other number seen is not erased.
    bystander = next(r.phone for r in all_results if r.phone and r.phone != victim)
    other = api.compliance.CheckNumber(kpb.CheckNumberRequest(phone=bystander),
                                       metadata=api.md, timeout=RPC_TIMEOUT)
    check(not other.suppressed and other.consent_on_record,
          "CheckNumber: another number is not suppressed and has consent")
    e = expect_code(grpc.StatusCode.INVALID_ARGUMENT,
                    lambda: api.compliance.CheckNumber(kpb.CheckNumberRequest(phone="12"),
                                                       metadata=api.md, timeout=RPC_TIMEOUT),
                    "a bad number is INVALID_ARGUMENT")
    check(e.details().startswith("phone"), "names the field phone")

    # A re-import of the number, into a new campaign, is refused.
    c2 = api.campaigns.CreateCampaign(
        cpb.CreateCampaignRequest(name="e2e follow-up", script="actualization",
                                  settings=settings(args.trunk)),
        metadata=api.md, timeout=RPC_TIMEOUT)

    def reimport():
        yield cpb.ImportContactsRequest(header=cpb.ImportHeader(campaign_id=c2.id))
        yield cpb.ImportContactsRequest(batch=cpb.ContactBatch(rows=[
            cpb.ContactRow(phone=local, consent_source="sms",
                           consent_at="2025-02-01 09:00", consent_text_version="v3"),
            cpb.ContactRow(phone=bystander, consent_source="sms",
                           consent_at="2025-02-01 09:00", consent_text_version="v3")]))

    r2 = api.campaigns.ImportContacts(reimport(), metadata=api.md, timeout=RPC_TIMEOUT)
    check(r2.suppressed_refused == 1 and r2.imported == 1,
          f"re-importing it is refused, the other number is imported ({r2.suppressed_refused} "
          f"refused, {r2.imported} imported)")
    audit = api.compliance.QueryAudit(kpb.QueryAuditRequest(action="opt_out"), metadata=api.md,
                                      timeout=RPC_TIMEOUT)
    check(any(a.subject == f"hmac:{o.phone_hmac}" for a in audit.entries),
          "the opt-out is in the audit log under its HMAC")
    check(all(victim not in (a.subject + a.details_json) for a in audit.entries),
          "the audit log does not hold the number")

    # -- export ---------------------------------------------------------------------------------
    text = b"".join(ch.data for ch in api.results.ExportResults(
        rpb.ExportResultsRequest(campaign_id=c.id), metadata=api.md, timeout=60)).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    check(len(rows) == len(full), f"export has {len(rows)} rows")
    check([int(r["seq"]) for r in rows] == full, "export rows in seq order")
    check(victim not in text, "the opted-out number is not exported")
    check(any(r["phone"] for r in rows), "other numbers are exported")
    check(all(r["phone"] == "" for r in rows if int(r["contact_id"]) in set(o.contact_ids)),
          "the erased contact's rows have no number")

    # -- stop ------------------------------------------------------------------------------------
    final = api.campaigns.GetCampaign(cpb.GetCampaignRequest(campaign_id=c.id), metadata=api.md,
                                      timeout=RPC_TIMEOUT)
    log("first campaign ended as", cpb.CampaignState.Name(final.state))
    check(final.state in (cpb.CAMPAIGN_STATE_RUNNING, cpb.CAMPAIGN_STATE_FINISHED),
          "the first campaign is running or finished")
    st = api.campaigns.StopCampaign(cpb.StopCampaignRequest(campaign_id=c2.id), metadata=api.md,
                                    timeout=RPC_TIMEOUT)
    check(st.state == cpb.CAMPAIGN_STATE_STOPPED, "the second campaign stopped")
    expect_code(grpc.StatusCode.FAILED_PRECONDITION,
                lambda: api.campaigns.ResumeCampaign(cpb.ResumeCampaignRequest(campaign_id=c2.id),
                                                     metadata=api.md, timeout=RPC_TIMEOUT),
                "a stopped campaign cannot resume")
    listed = api.campaigns.ListCampaigns(cpb.ListCampaignsRequest(), metadata=api.md,
                                         timeout=RPC_TIMEOUT)
    check(sorted(x.id for x in listed.campaigns) == sorted([c.id, c2.id]), "ListCampaigns")

    # -- metrics -----------------------------------------------------------------------------------
    with urllib.request.urlopen(args.metrics, timeout=RPC_TIMEOUT) as resp:
        check(resp.status == 200, "/metrics answers 200")
        body = resp.read().decode()
    samples, types = parse_prometheus(body)
    names = sorted(samples)
    log(f"metrics: {len(names)} names, e.g. {names[:8]}")
    dialer_names = [n for n in names if n.startswith("dialer_")]
    check(len(dialer_names) >= 3, f"{len(dialer_names)} dialer_* metrics")
    summary["metrics"] = dialer_names

    print("DONE " + json.dumps(summary, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure as exit 1
        log("FAILED:", type(e).__name__, e)
        raise SystemExit(1)
