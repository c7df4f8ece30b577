"""A study's results: per-variant aggregates over seeds, and the tables (results.json, .csv, .md).

The report (:mod:`vaelab.report`) reads results.json through the public functions here
(:func:`ordered`, :data:`COLUMNS`, :func:`fmt_metric`, :func:`compute_line`, :func:`task_rows`).
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from ..config import finite_number
from ..eval_schema import STANDARD_KEYS
from ..io import atomic_write_json, atomic_write_text
from ..provenance import environment, now
from .paired import markdown_lines as paired_markdown, paired_iwae
from ..registry import get
from .settings import EVAL_SEED, PAPER_TABLE2, SCHEMA, RunSpec, Settings, canonical_command, variant_label


def aggregate(evals: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric over runs: {"mean", "sd" (sample sd; None for n < 2), "n", "values"}; a metric that
    no run has as a number becomes {"available": false, "reason": the first run's reason}."""
    keys: list[str] = []
    for ev in evals:
        for k in ev:
            if k != "meta" and k not in keys:
                keys.append(k)
    out: dict[str, Any] = {}
    for k in keys:
        vals = [float(ev[k]) for ev in evals if finite_number(ev.get(k))]
        if vals:
            out[k] = {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else None,
                      "n": len(vals), "values": vals}
            continue
        reasons = [ev[k].get("reason") for ev in evals if isinstance(ev.get(k), dict) and ev[k].get("available") is False]
        if reasons:
            out[k] = {"available": False, "reason": reasons[0] or "not available"}
        # lists (e.g. the sample class histogram) are kept per run only
    return out


def collect(s: Settings, specs: list[RunSpec], runs: list[dict[str, Any]], started: str, seconds: float) -> dict[str, Any]:
    by_spec = {(sp.variant, sp.seed): sp for sp in specs}
    variants: dict[str, Any] = {}
    for name in s.variants:
        rs = [r for r in runs if r["variant"] == name]
        ok = [r for r in rs if r["status"] == "ok" and isinstance(r.get("eval"), dict)]
        sp = by_spec[(name, s.seeds[0])]
        variants[name] = {
            "label": variant_label(name),
            "n_runs": len(rs), "n_ok": len(ok), "n_failed": len(rs) - len(ok),
            "errors": [{"seed": r["seed"], "stage": r.get("stage"), "error": r.get("error")} for r in rs if r["status"] != "ok"],
            "metrics": aggregate([r["eval"] for r in ok]),
            "paper": {k: v for k, v in PAPER_TABLE2.get(name, {}).items() if k != "label"} or None,
            "model": sp.resolved_model, "model_overrides": sp.model_overrides, "phases": sp.phases,
            "train": {k: getattr(sp.train, k) for k in ("optimizer", "lr", "batch_size", "epochs", "binarize", "precision")},
            **_variant_traits(name, sp.phases),
        }
    paired = paired_iwae(list(s.variants), {n: v["conditional"] for n, v in variants.items()}, runs)  # run dirs as given
    for r in runs:
        r["run_dir"] = os.path.relpath(r["run_dir"], s.out)
    classifier_acc = next((r["eval"]["meta"].get("classifier_test_accuracy") for r in runs
                           if r["status"] == "ok" and isinstance(r.get("eval"), dict) and "meta" in r["eval"]), None)
    return {
        "schema": SCHEMA,
        "settings": {**s.to_dict(), "eval_seed": EVAL_SEED},
        "command": s.command or canonical_command(s),
        "command_equivalent": canonical_command(s),
        "started": started,
        "finished": now(),
        "seconds": round(seconds, 1),
        "environment": environment(),
        "classifier_test_accuracy": classifier_acc,
        "compute": compute_totals(runs),
        "variants": variants,
        **({"paired_iwae": paired} if paired else {}),  # only when some run saved per-image IWAE values
        "runs": runs,
    }


def compute_totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's compute: training seconds (metrics.jsonl) and evaluation seconds (eval.json meta)
    summed over the evaluated runs, with how many runs lack an evaluation time."""
    ok = [r["eval"] for r in runs if r["status"] == "ok" and isinstance(r.get("eval"), dict)]
    train = sum(float(ev["train_seconds"]) for ev in ok if finite_number(ev.get("train_seconds")))
    recorded = [ev.get("meta", {}).get("eval_seconds") for ev in ok]
    evaluation = sum(float(t) for t in recorded if finite_number(t))
    return {"runs": len(ok), "train_seconds": round(train, 1), "eval_seconds": round(evaluation, 1),
            "eval_seconds_missing": sum(not finite_number(t) for t in recorded), "total_seconds": round(train + evaluation, 1)}


def compute_line(results: dict[str, Any]) -> str:
    """One sentence of the study's summed compute, for results.md and the report."""
    c = results.get("compute") or compute_totals(results.get("runs", []))
    miss = f"; {c['eval_seconds_missing']} run(s) without a recorded evaluation time" if c["eval_seconds_missing"] else ""
    threads = results.get("environment", {}).get("machine", {}).get("torch_threads")
    return (f"{c['total_seconds'] / 3600:.2f} h over {_plural(c['runs'], 'run')}: training {c['train_seconds'] / 3600:.2f} h "
            f"+ evaluation {c['eval_seconds'] / 3600:.2f} h, wall time of {threads or '?'}-thread processes summed{miss}")


def _variant_traits(name: str, phases: list[tuple[str, int]]) -> dict[str, Any]:
    """What the report needs to know of a variant class: its latent geometry, whether its likelihood
    bounds are conditional (log p(x | y)), and what its loss measures in each phase."""
    cls = get(name)
    return {"latent_kind": cls.latent_kind, "conditional": bool(cls.conditional),
            "loss_labels": {ph: cls.loss_label(ph) for ph, _ in phases}}


# ----- the tables ---------------------------------------------------------------------------------------
#: (key, column title, scale, digits) of the main metrics, in table order.
COLUMNS = [
    ("recon_accuracy", "Recon acc. %", 100, 1),
    ("seconds_per_epoch", "s/epoch", 1, 2),
    ("fid", "FID", 1, 2),
    ("inception_score", "IS", 1, 2),
    ("precision", "Precision", 1, 3),
    ("recall", "Recall", 1, 3),
    ("neg_elbo", "−ELBO (nats)", 1, 1),
    ("neg_elbo_iwae_subset", "−ELBO (nats)", 1, 1),
    ("iwae_nll", "IWAE NLL (nats)", 1, 1),
    ("cluster_accuracy", "Cluster ACC %", 100, 1),
    ("cluster_nmi", "NMI", 1, 3),
    ("cluster_ari", "ARI", 1, 3),
    ("cond_accuracy", "Cond. acc. %", 100, 1),
    ("parameters", "Parameters", 1, 0),
]


#: The disentanglement table (datasets with ground-truth factors, e.g. dsprites): (eval.json key, column
#: title, scale, digits), the five metrics' headline figures first (vaelab.scoring's DISENTANGLEMENT_KEYS).
DISENTANGLEMENT_COLUMNS = [
    ("disentanglement.beta_vae.eval_accuracy", "BetaVAE score", 1, 3),
    ("disentanglement.factor_vae.eval_accuracy", "FactorVAE score", 1, 3),
    ("disentanglement.mig", "MIG", 1, 3),
    ("disentanglement.dci.disentanglement", "DCI disent.", 1, 3),
    ("disentanglement.dci.completeness", "DCI compl.", 1, 3),
    ("disentanglement.dci.informativeness_test", "DCI inform. (test acc.)", 1, 3),
    ("disentanglement.sap", "SAP", 1, 3),
    ("disentanglement.beta_vae.train_accuracy", "BetaVAE train acc.", 1, 3),
    ("disentanglement.factor_vae.train_accuracy", "FactorVAE train acc.", 1, 3),
    ("disentanglement.dci.informativeness_train", "DCI inform. (train acc.)", 1, 3),
    ("disentanglement.factor_vae.num_active_dims", "Active dims (FactorVAE)", 1, 1),
]
DISENTANGLEMENT_NOTE = ("Disentanglement metrics of each variant's posterior mean against dSprites' five factors (shape, "
                        "scale, orientation, posX, posY), mean ± sd over seeds, higher is better; BetaVAE and FactorVAE "
                        "scores are accuracies at telling which factor was held fixed (chance 0.2). Sample counts: "
                        "the runs' eval.json meta.disentanglement.")


def disentanglement_columns(results: dict[str, Any]) -> list[tuple[str, str, float, int]]:
    """The DISENTANGLEMENT_COLUMNS that some run of the study carries as a number (none: no table)."""
    have = {k for v in results["variants"].values() for k, m in v["metrics"].items() if isinstance(m, dict) and "mean" in m}
    return [c for c in DISENTANGLEMENT_COLUMNS if c[0] in have]


def disentanglement_counts(results: dict[str, Any]) -> dict[str, Any] | None:
    """The disentanglement metrics' mode and counts as the first evaluated run recorded them (None: none)."""
    for r in results.get("runs", []):
        meta = (r.get("eval") or {}).get("meta") if isinstance(r.get("eval"), dict) else None
        if meta and meta.get("disentanglement"):
            return meta["disentanglement"]
    return None


def counts_text(counts: dict[str, Any] | None) -> str:
    """``mode (metric: option=value, ...; ...)`` of :func:`disentanglement_counts`."""
    if not counts:
        return "?"
    per = counts.get("options") or {}
    items = "; ".join(f"{m}: " + ", ".join(f"{k}={v}" for k, v in o.items()) for m, o in per.items() if o)
    return f"{counts.get('mode')}" + (f" ({items})" if items else " (the metrics' defaults)")


#: The likelihood columns; a conditional variant's are bounds on −log p(x | y), marked with COND_MARK.
LIKELIHOOD_COLUMNS = ("neg_elbo", "neg_elbo_iwae_subset", "iwae_nll")
COND_MARK = "†"
COND_NOTE = ("† a conditional variant's bound on −log p(x | y), the class label given: not comparable with the "
             "others' bounds on −log p(x).")


def eval_sizes(results: dict[str, Any]) -> dict[str, Any]:
    """The evaluation's sizes as the runs recorded them: n_test, iwae_n (images of the IWAE bound), iwae_k."""
    s = results["settings"]
    sizes = {"n_test": None, "iwae_n": s.get("iwae_n"), "iwae_k": s.get("iwae_k")}
    for r in results.get("runs", []):
        meta = (r.get("eval") or {}).get("meta") if isinstance(r.get("eval"), dict) else None
        if meta:
            sizes.update(n_test=meta.get("n_test"), iwae_n=meta.get("iwae_n"), iwae_k=meta.get("iwae_k"))
            break
    return sizes


def column_title(key: str, title: str, results: dict[str, Any]) -> str:
    """A column's header with the images it was computed on: the likelihood columns name their image set
    (all test images, or the first iwae_n with K importance samples)."""
    z = eval_sizes(results)
    if key == "neg_elbo":
        return f"−ELBO, all {z['n_test'] or '?'} test images (nats)"
    if key == "neg_elbo_iwae_subset":
        return f"−ELBO, first {z['iwae_n']} test images (nats)"
    if key == "iwae_nll":
        return f"IWAE NLL, K={z['iwae_k']}, first {z['iwae_n']} test images (nats)"
    return title


def fmt_metric(m: Any, scale: float = 1, digits: int = 2, sd: bool = True) -> str:
    """``mean ± sd`` (sd only for n ≥ 2), ``—`` when absent."""
    if not isinstance(m, dict) or "mean" not in m:
        return "—"
    mean = m["mean"] * scale
    if digits == 0:
        txt = f"{mean:,.0f}"
    else:
        txt = f"{mean:.{digits}f}"
    if sd and m.get("sd") is not None and digits != 0:
        txt += f" ± {m['sd'] * scale:.{digits}f}"
    return txt


def ordered(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, per-variant results) in the study's order (results.json itself is written with sorted keys)."""
    V = results["variants"]
    return [(n, V[n]) for n in results["settings"]["variants"] if n in V]


def task_metrics(v: dict[str, Any]) -> list[str]:
    """The numeric metrics of one variant's results that come from its own task (``Variant.task_metrics``,
    e.g. quadrant completion's conditional NLLs): everything outside evaluate's standard schema."""
    return sorted(k for k, m in v["metrics"].items()
                  if k not in STANDARD_KEYS and "." not in k and isinstance(m, dict) and "mean" in m)


def task_rows(results: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(variant label, [(task metric key, formatted mean ± sd)]) for every variant that has task metrics."""
    rows = [(v["label"], [(k, fmt_metric(v["metrics"][k], 1, 2)) for k in task_metrics(v)]) for _, v in ordered(results)]
    return [(label, items) for label, items in rows if items]


def metric_keys(results: dict[str, Any]) -> list[str]:
    """Every aggregated numeric metric: the main columns first, then the rest alphabetically."""
    seen = set()
    for v in results["variants"].values():
        seen |= {k for k, m in v["metrics"].items() if isinstance(m, dict) and "mean" in m}
    main = [k for k, *_ in COLUMNS if k in seen]
    return main + sorted(seen - set(main))


def write_results(results: dict[str, Any], out: Path) -> None:
    """results.json, results.csv (one row per variant: mean, sd, n of every metric) and results.md."""
    import csv
    import io

    atomic_write_json(out / "results.json", results)
    keys = metric_keys(results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "n_runs", "n_ok", "n_failed", *[f"{k}_{s}" for k in keys for s in ("mean", "sd", "n")],
                "paper_recon_accuracy", "paper_seconds_per_epoch", "errors"])
    for name, v in ordered(results):
        row: list[Any] = [name, v["n_runs"], v["n_ok"], v["n_failed"]]
        for k in keys:
            m = v["metrics"].get(k)
            if isinstance(m, dict) and "mean" in m:
                row += [_csv_num(m["mean"]), "" if m["sd"] is None else _csv_num(m["sd"]), m["n"]]
            else:
                row += ["", "", 0]
        p = v.get("paper") or {}
        row += [p.get("recon_accuracy", ""), p.get("seconds_per_epoch", ""),
                "; ".join(f"seed {e['seed']}: {e['error']}" for e in v["errors"])]
        w.writerow(row)
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.md", markdown(results))


def _csv_num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def metric_text(v: dict[str, Any], key: str, scale: float = 1, digits: int = 2) -> str:
    """A table cell's text: ``mean ± sd``, ``—`` when absent, marked when it is a conditional bound."""
    txt = fmt_metric(v["metrics"].get(key), scale, digits)
    return txt + COND_MARK if txt != "—" and key in LIKELIHOOD_COLUMNS and v.get("conditional") else txt


#: The cost table: (key, header, scale, digits); measured on this machine, one run at a time.
COST_COLUMNS = [("seconds_per_epoch", "s/epoch", 1, 2), ("images_per_epoch", "images/epoch", 1, 0),
                ("images_per_s", "images/s", 1, 0), ("load_avg_max", "max load avg", 1, 1), ("train_seconds", "train s", 1, 0)]


def paper_seconds_note() -> str:
    """The seed paper's seconds per epoch, as a labelled note: its hardware and epoch size differ from any run here."""
    items = ", ".join(f"{t['label']} {t['seconds_per_epoch']}" for t in PAPER_TABLE2.values())
    return ("The seed paper's seconds per epoch (Keras on a Tesla P100 GPU, full 60,000-image MNIST epochs), "
            f"not comparable with the figures above: {items}.")


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    cpu = results["environment"]["machine"]["summary"]
    lines = [f"# vaelab compare: {s['dataset']}, backbone {s['backbone']}, latent {s['latent_dim']}, {_plural(s['epochs'], 'epoch')}, "
             f"protocol {s['protocol']}, seeds {','.join(map(str, s['seeds']))}", "",
             f"Command: `{results.get('command') or '?'}`  ", f"Date: {results['finished']}  ",
             f"Machine: {cpu}  ",
             f"Compute: {compute_line(results)}", "",
             "## Table 2, reproduced (mean ± sd over seeds)", "",
             "| Variant | n | Recon acc. % | Paper % (Table 2) |",
             "|:---|---:|---:|---:|"]
    for name, v in ordered(results):
        p = v.get("paper") or {}
        failed = f" ({v['n_failed']} failed)" if v["n_failed"] else ""
        lines.append(f"| {v['label']} | {v['n_ok']}{failed} | {metric_text(v, 'recon_accuracy', 100, 1)} | {p.get('recon_accuracy', '—')} |")
    lines += ["", f"## Training cost on this machine ({cpu}; runs one after another)", "",
              "| Variant | " + " | ".join(h for _, h, _, _ in COST_COLUMNS) + " |", "|:---" + "|---:" * len(COST_COLUMNS) + "|"]
    for name, v in ordered(results):
        lines.append(f"| {v['label']} | " + " | ".join(metric_text(v, k, sc, d) for k, _, sc, d in COST_COLUMNS) + " |")
    lines += ["", paper_seconds_note()]
    cols = [c for c in COLUMNS if c[0] not in ("recon_accuracy", "seconds_per_epoch")]
    lines += ["", "## Further metrics", "", "| Variant | " + " | ".join(column_title(k, t, results) for k, t, _, _ in cols) + " |",
              "|:---" + "|---:" * len(cols) + "|"]
    for name, v in ordered(results):
        lines.append(f"| {v['label']} | " + " | ".join(metric_text(v, k, sc, d) for k, _, sc, d in cols) + " |")
    if any(v.get("conditional") for _, v in ordered(results)):
        lines += ["", COND_NOTE]
    dis = disentanglement_columns(results)
    if dis:
        lines += ["", "## Disentanglement (mean ± sd over seeds)", "", DISENTANGLEMENT_NOTE,
                  f"Counts: {counts_text(disentanglement_counts(results))}.", "",
                  "| Variant | n | " + " | ".join(t for _, t, _, _ in dis) + " |", "|:---|---:" + "|---:" * len(dis) + "|"]
        for name, v in ordered(results):
            lines.append(f"| {v['label']} | {v['n_ok']} | " + " | ".join(metric_text(v, k, sc, d) for k, _, sc, d in dis) + " |")
    task = task_rows(results)
    if task:
        lines += ["", "## Task metrics", ""]
        lines += [f"- {label}: " + ", ".join(f"`{k}` {txt}" for k, txt in items) for label, items in task]
    lines += paired_markdown(results)
    failed = [(n, e) for n, v in ordered(results) for e in v["errors"]]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- {n} seed {e['seed']} ({e['stage']}): {e['error']}" for n, e in failed]
    lines += ["", "— = not defined for that variant or not available (see results.json for the reason).", ""]
    return "\n".join(lines)


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"

