"""The lab's report (make lab, lab/playbook.yml): from the probe's
measurements, the figures per limit, a Markdown report and a picture of MySQL's
sessions, HAProxy's queue and each request over time. The figures are also
written back into the measurements file ("figures"), which the tests read."""
import argparse
import datetime
import json
import pathlib
import statistics


def _peak(samples, key, start=None, end=None):
    values = [s[key] for s in samples if (start is None or s["t"] >= start) and (end is None or s["t"] < end)]
    return max(values) if values else None


def request_waits(run):
    """Each request's wait for a connection: its time beyond the query's sleep."""
    return [max(0.0, r["end"] - r["start"] - run["sleep"]) for r in run["requests"]]


def burst_figures(run):
    samples, requests = run["samples"], run["requests"]
    waits = request_waits(run)
    excess = max(0, run["clients"] - run["limit"])
    figures = {
        "kind": "burst", "limit": run["limit"], "requests": run["clients"], "excess": excess,
        "peak_mysql_sessions": _peak(samples, "mysql_sessions"),
        "peak_haproxy_sessions": _peak(samples, "haproxy_sessions"),
        "peak_queue_sampled": _peak(samples, "haproxy_queue"),
        "haproxy_smax": run["haproxy_smax"], "haproxy_qmax": run["haproxy_qmax"],
        "failed": sum(1 for r in requests if r["status"] != 200),
        "longest_wait": round(max(waits), 2), "median_wait": round(statistics.median(waits), 2),
        "seconds": round(max(r["end"] for r in requests) - min(r["start"] for r in requests), 2),
    }
    figures["agrees"] = (figures["peak_mysql_sessions"] == run["limit"] == figures["haproxy_smax"]
                         and figures["haproxy_qmax"] == excess == figures["peak_queue_sampled"]
                         and figures["failed"] == 0)
    return figures


def change_figures(run):
    samples, reload_at, gone_at = run["samples"], run["reload_at"], run["old_worker_gone_at"]
    figures = {
        "kind": "change", "from_limit": run["from_limit"], "to_limit": run["to_limit"], "clients": run["clients"],
        "reload_at": reload_at, "old_worker_gone_at": gone_at,
        "requests": len(run["requests"]), "failed": sum(1 for r in run["requests"] if r["status"] != 200),
        "peak_mysql_before": _peak(samples, "mysql_sessions", end=reload_at),
        "peak_queue_before": _peak(samples, "haproxy_queue", end=reload_at),
    }
    # HAProxy 2.2: an old worker's `show stat` omits the proxies it stopped.
    # (A sample as it exits may miss it on any version: most must, to count.)
    draining = [s for s in samples if s["workers"] > 1]
    figures["old_worker_silent"] = bool(draining) and 2 * sum(
        s.get("workers_answered", s["workers"]) < s["workers"] for s in draining) > len(draining)
    if reload_at is not None and gone_at is not None:
        figures["peak_mysql_draining"] = _peak(samples, "mysql_sessions", reload_at, gone_at)
        # A session whose connection the old worker closed ends in MySQL once its query has.
        figures["peak_mysql_after"] = _peak(samples, "mysql_sessions", gone_at + run["sleep"] + 0.5)
        figures["drain_seconds"] = round(gone_at - reload_at, 1)
        figures["agrees"] = (figures["peak_mysql_before"] == run["from_limit"]
                             and figures["peak_mysql_after"] is not None
                             and figures["peak_mysql_after"] <= run["to_limit"] and figures["failed"] == 0)
    else:
        figures["agrees"] = False
    return figures


def figures_of(run):
    return burst_figures(run) if run["mode"] == "burst" else change_figures(run)


def markdown(data, figures, picture_name):
    when = datetime.datetime.fromtimestamp(data["runs"][0]["started"], datetime.timezone.utc)
    first = data["runs"][0]
    lines = [
        "# The lab: what HAProxy's maxconn does to MySQL",
        "",
        f"Measured by `make lab` on {data['host']} ({first.get('versions', {}).get('haproxy', 'HAProxy')}, "
        f"{first.get('versions', {}).get('mysql', 'MySQL')}), {when:%Y-%m-%d %H:%M} UTC. Each request is "
        f"`GET /sleep/{first['sleep']:g}` to the app's instances (ports {', '.join(map(str, first['ports']))}), "
        f"whose query holds a MySQL connection for {first['sleep']:g} s; HAProxy admits `maxconn` connections "
        "to MySQL and queues the rest. Sampled every 0.2 s on the host: the app account's sessions in MySQL "
        "(`information_schema.PROCESSLIST`), and HAProxy's sessions and queue over all its workers (master CLI).",
        "",
        f"![MySQL sessions, HAProxy's queue and each request over time]({picture_name})",
        "",
        "| server maxconn | concurrent requests | peak MySQL sessions | HAProxy's peak sessions (smax) "
        "| peak queue (qmax) | excess | median / longest wait | all done in | failed | agrees |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for item in figures:
        if item["kind"] == "burst":
            lines.append(f"| {item['limit']} | {item['requests']} | {item['peak_mysql_sessions']} | "
                         f"{item['haproxy_smax']} | {item['haproxy_qmax']} | {item['excess']} | "
                         f"{item['median_wait']} s / {item['longest_wait']} s | {item['seconds']} s | "
                         f"{item['failed']} | {'yes' if item['agrees'] else 'NO'} |")
    lines += ["", "MySQL never sees more sessions than the limit: the excess waits in HAProxy's queue, which "
              "drains a round at a time as queries finish: while an instance's requests wait, a connection of "
              "its whose query ends closes and hands its slot to the longest waiter. An instance with nothing "
              "waiting keeps its pooled connection, and the slot, for its next request, which can leave a round "
              "one short of the limit.", ""]
    for item in figures:
        if item["kind"] != "change":
            continue
        lines += [f"## Changing the limit while clients keep sending: {item['from_limit']} -> {item['to_limit']}", ""]
        if item["reload_at"] is None or item["old_worker_gone_at"] is None:
            lines += ["The reload or its old worker's exit was not seen within the probe's time: no figures.", ""]
            continue
        lines += [
            f"{item['clients']} clients sent `/sleep` requests one after another ({item['requests']} in all, "
            f"{item['failed']} failed). Before the change MySQL saw at most {item['peak_mysql_before']} sessions "
            f"and up to {item['peak_queue_before']} connections queued. The haproxy role wrote the new limit and "
            f"reloaded HAProxy at {item['reload_at']:.1f} s, then pointed the app at the new config: each pooled "
            "connection is replaced, as it next leaves the pool, by one through HAProxy's new worker. The old worker "
            f"kept the connections it had, under the old limit, while the new one admitted {item['to_limit']}: "
            f"MySQL saw up to {item['peak_mysql_draining']} sessions for {item['drain_seconds']} s, until the old "
            "worker left (its connections ended; `hard-stop-after` is the last resort). From then on, at most "
            f"{item['peak_mysql_after']}. Agrees with the limit: {'yes' if item['agrees'] else 'NO'}.",
            ""]
        if item["old_worker_silent"]:
            lines += ["This HAProxy's old worker leaves the proxies it stopped out of its `show stat` while it "
                      "drains (seen on 2.2; 3.2 keeps them), so HAProxy's queue drawn is the new worker's alone "
                      "until it left; the old worker's own queue waited unseen. MySQL's sessions count both.", ""]
    lines += ["Run it again: `make demo && make lab` (about five minutes; `LAB_ARGS='-e lab_host=NAME -i INVENTORY'` "
              "for another single-host stack). HAProxy gets the inventory's limits back at the end.", ""]
    return "\n".join(lines)


def draw(data, figures, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    runs = data["runs"]
    spans = [max(s["t"] for s in run["samples"]) for run in runs]
    fig, axes = plt.subplots(2, len(runs), figsize=(5 * len(runs) + 3, 8), sharex="col", squeeze=False,
                             gridspec_kw={"width_ratios": [max(span, max(spans) / 4) for span in spans],
                                          "height_ratios": [3, 2]})
    for column, (run, item) in enumerate(zip(runs, figures)):
        top, bottom = axes[0][column], axes[1][column]
        t = [s["t"] for s in run["samples"]]
        top.step(t, [s["mysql_sessions"] for s in run["samples"]], where="post", color="tab:blue", lw=2,
                 label="MySQL sessions (app account)")
        top.step(t, [s["haproxy_queue"] for s in run["samples"]], where="post", color="tab:orange", lw=2,
                 label="HAProxy queue")
        top.step(t, [float("nan") if s["limit"] is None else s["limit"] for s in run["samples"]], where="post",
                 color="tab:red", ls="--", lw=1.2,
                 label="server maxconn")
        if run["mode"] == "burst":
            top.set_title(f"maxconn {run['limit']}: {run['clients']} at once")
        else:
            top.set_title(f"maxconn {run['from_limit']} -> {run['to_limit']} (a rerun) while {run['clients']} clients send")
            for at, label in ((run["reload_at"], "reload"), (run["old_worker_gone_at"], "old worker gone")):
                if at is not None:
                    for axis in (top, bottom):
                        axis.axvline(at, color="gray", ls=":", lw=1)
                    top.annotate(label, (at, top.get_ylim()[1] * 0.95), rotation=90, va="top", ha="right",
                                 fontsize=8, color="gray")
        top.set_ylabel("connections")
        top.yaxis.set_major_locator(MaxNLocator(integer=True))
        top.grid(alpha=0.3)
        for index, (request, wait) in enumerate(zip(run["requests"], request_waits(run))):
            failed = request["status"] != 200
            bottom.barh(index, wait, left=request["start"], color="lightgray", height=0.8)
            bottom.barh(index, request["end"] - request["start"] - wait, left=request["start"] + wait,
                        color="tab:red" if failed else "tab:green", height=0.8)
        bottom.set_xlabel("seconds")
        bottom.set_ylabel("requests")
        bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
        if column == 0:
            handles = top.get_legend_handles_labels()[0] + [
                Patch(color="lightgray", label="request waiting for a connection"),
                Patch(color="tab:green", label="request's query running")]
    fig.suptitle(f"What HAProxy's server maxconn lets through to MySQL: GET /sleep/{runs[0]['sleep']:g}, "
                 f"each holding a connection {runs[0]['sleep']:g} s", fontsize=13)
    fig.legend(handles=handles, loc="upper center", ncol=5, fontsize=9, bbox_to_anchor=(0.5, 0.955), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("measurements")
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--picture", required=True)
    args = parser.parse_args()
    path = pathlib.Path(args.measurements)
    data = json.loads(path.read_text())
    figures = [figures_of(run) for run in data["runs"]]
    data["figures"] = figures
    path.write_text(json.dumps(data))
    draw(data, figures, args.picture)
    pathlib.Path(args.markdown).write_text(markdown(data, figures, pathlib.Path(args.picture).name))
    for item in figures:
        print(json.dumps(item))


if __name__ == "__main__":
    main()
