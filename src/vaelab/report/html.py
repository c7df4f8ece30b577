"""The report's HTML: one static page (inline CSS, no scripts, relative image links)."""
from __future__ import annotations

import json
from html import escape
from typing import Any

from ..study.results import (COLUMNS, COND_MARK, COND_NOTE, COST_COLUMNS, DISENTANGLEMENT_NOTE, LIKELIHOOD_COLUMNS, column_title,
                             compute_line, counts_text, disentanglement_columns, disentanglement_counts, eval_sizes,
                             fmt_metric, ordered, paper_seconds_note, task_rows)
from ..study.paired import HEADERS as PAIRED_HEADERS, PAIRED_TITLE, paired_note, table_rows as paired_rows
from .sequences import section as sequence_section
from .zsl import section as zsl_section

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px 48px;color:#222}
h1{font-size:22px;margin:24px 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:14px;margin:8px 0 4px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;white-space:normal;max-width:200px}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left;white-space:normal}td.paper{background:#fafaf0;color:#555}sup.cond{color:#a60;cursor:help}td.na{color:#999;cursor:help;text-align:center}td.fail{color:#a00}
.grid{display:flex;flex-wrap:wrap;gap:18px}.card{border:1px solid #ddd;border-radius:6px;padding:8px 10px;background:#fff}
.card img{display:block;image-rendering:pixelated;max-width:100%}.muted{color:#777;font-size:12px}
.na-box{color:#999;font-style:italic;padding:20px 8px;max-width:320px}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f6f6f6}pre{padding:8px;overflow-x:auto;white-space:pre-wrap}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}dt{color:#555}dd{margin:0}
"""


def _absent_title(m: Any, v: dict[str, Any], key: str) -> str:
    if isinstance(m, dict) and m.get("available") is False:
        return m.get("reason") or "not available"
    if v["n_ok"] == 0:
        errs = "; ".join(f"seed {e['seed']}: {e['error']}" for e in v["errors"])
        return f"every run failed ({errs})" if errs else "no run"
    return f"{key} was not reported by the evaluation"


def _cell(v: dict[str, Any], key: str, scale: float = 1, digits: int = 2) -> str:
    m = v["metrics"].get(key)
    if not (isinstance(m, dict) and "mean" in m):
        return f'<td class="na" data-key="{escape(key)}" title="{escape(_absent_title(m, v, key))}">—</td>'
    vals = ", ".join(f"{x * scale:.{max(digits, 2)}f}" if digits else f"{x * scale:,.0f}" for x in m["values"])
    extra = ""
    if key == "seconds_per_epoch":
        phases = sorted(k.split(".", 1)[1] for k, mm in v["metrics"].items()
                        if k.startswith("seconds_per_epoch.") and isinstance(mm, dict) and "mean" in mm)
        if phases:
            extra = "; per phase: " + ", ".join(f"{p} {v['metrics']['seconds_per_epoch.' + p]['mean']:.2f}s" for p in phases)
    title = f"n={m['n']}: {vals}{extra}"
    mark = ""
    if key in LIKELIHOOD_COLUMNS and v.get("conditional"):
        mark = f'<sup class="cond" title="{escape(COND_NOTE)}">{COND_MARK}</sup>'
    return f'<td data-key="{escape(key)}" title="{escape(title)}">{escape(fmt_metric(m, scale, digits))}{mark}</td>'


def _img(src: str | None, reason: str | None, alt: str) -> str:
    if src:
        return f'<img src="{escape(src)}" alt="{escape(alt)}" loading="eager">'
    return f'<div class="na-box" title="{escape(reason or "not available")}">— {escape(reason or "not available")}</div>'


def render(results: dict[str, Any], figs: dict[str, dict[str, Any]], bars: str | None, n_recon: int, map_points: int,
           zsl: dict[str, Any] | None = None, sequences: dict[str, Any] | None = None) -> str:
    s = results["settings"]
    env = results["environment"]
    V = results["variants"]
    seeds = ",".join(map(str, s["seeds"]))
    h: list[str] = []
    a = h.append
    a("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<link rel=\"icon\" href=\"data:,\">"
      f"<title>vaelab compare: {escape(s['dataset'])}</title><style>{CSS}</style></head><body>")
    a(f"<h1>VAE variants on {escape(s['dataset'])}: a controlled comparison</h1>")
    a(f"<p class=\"muted\">{escape(results['finished'])} · <code>{escape(results.get('command') or '?')}</code></p>")
    quick = " (<code>--quick</code>)" if s.get("quick") else ""
    a("<p>Every variant below was trained with the same backbone, latent size, epoch budget, batch size and "
      f"optimizer{quick}, evaluated on the full test set by the same reference classifier, and summarised as "
      "mean ± sd over seeds. The seed paper's Table 2 compared models from different frameworks, latent "
      "sizes (2 to 128) and 5000-epoch budgets, with accuracies on 27–100 images; its values are shown "
      "beside ours for reference, not as a target.</p>")

    # ----- settings ------------------------------------------------------------------------------
    a("<h2 id=\"settings\">Settings</h2><dl>")
    rows = [
        ("protocol", f"{s['protocol']}" + (" — RMSprop, lr 1e-3, batch 100 (the seed's Table 1) for every variant"
                                           if s["protocol"] == "paper" else " — Adam, lr 1e-3, batch 100 for every variant")),
        ("dataset", f"{s['dataset']}" + (f" (data dir {s['data_dir']})" if s.get("data_dir") else "")),
        ("backbone / latent size", f"{s['backbone']} / {s['latent_dim']}"),
        ("epochs (main phase)", str(s["epochs"])),
        ("extra-phase budget cap", "none (each variant's default)" if s.get("phase_epochs") is None else f"{s['phase_epochs']} epoch{'s' if s['phase_epochs'] != 1 else ''}"),
        ("seeds", seeds),
        ("binarization", s.get("binarize", "none")),
        ("evaluation", f"reconstruction accuracy on the whole test set; {s['n_samples']} samples for FID/IS/precision/recall; "
                       f"IWAE K={s['iwae_k']} on the first {s['iwae_n']} test images; sample seed {s.get('eval_seed', 0)}"),
        ("reference classifier", "test accuracy " + (f"{100 * results['classifier_test_accuracy']:.2f}%"
                                                    if isinstance(results.get("classifier_test_accuracy"), (int, float)) else "n/a")),
        ("latent maps", f"{map_points} test images (fixed subsample)"),
    ]
    for k, val in rows:
        a(f"<dt>{escape(k)}</dt><dd>{escape(val)}</dd>")
    a("</dl>")
    a("<table><tr><th>Variant</th><th class=\"text\">Phases (epochs)</th><th class=\"text\">Optimizer</th>"
      "<th class=\"text\">Config beyond backbone/latent</th></tr>")
    for name, v in ordered(results):
        ph = ", ".join(f"{p} {e}" for p, e in v["phases"])
        t = v["train"]
        ov = ", ".join(f"{k}={json.dumps(val)}" for k, val in v["model_overrides"].items()) or "defaults"
        a(f"<tr><td>{escape(v['label'])}</td><td class=\"text\">{escape(ph)}</td><td class=\"text\">{escape(t['optimizer'])}, "
          f"lr {t['lr']:g}, batch {t['batch_size']}</td><td class=\"text\">{escape(ov)}</td></tr>")
    a("</table>")

    # ----- Table 2 -----------------------------------------------------------------------------------
    a("<h2 id=\"table2\">Table 2, reproduced</h2>")
    a("<p class=\"muted\">Recon accuracy: the reference classifier's accuracy on the reconstructions of all "
      f"{escape(str(eval_sizes(results)['n_test'] or '?'))} test images. Paper: the seed's Table 2 (Keras; latent sizes 2–128; accuracies "
      "on 27–100 re-generated images).</p>")
    a("<table id=\"table2-results\"><thead><tr><th>Variant</th><th>Seeds (n)</th><th>Recon acc. % (mean ± sd)</th>"
      "<th>Paper %</th><th>Parameters</th></tr></thead><tbody>")
    for name, v in ordered(results):
        p = v.get("paper") or {}
        nf = f' <span class="fail">({v["n_failed"]} failed)</span>' if v["n_failed"] else ""
        a(f"<tr class=\"variant-row\" data-variant=\"{escape(name)}\"><td>{escape(v['label'])}</td><td>{v['n_ok']}{nf}</td>"
          + _cell(v, "recon_accuracy", 100, 1) + _paper(p, "recon_accuracy") + _cell(v, "parameters", 1, 0) + "</tr>")
    a("</tbody></table>")
    m = env["machine"]
    a("<h2 id=\"cost\">Training cost on this machine</h2>")
    a(f"<p class=\"muted\">{escape(m['summary'])}. Runs trained one after another; seconds per epoch and images/s are "
      "medians over the main phase's epochs (hover for every seed and the other phases); max load avg is the highest "
      "1-minute load average at an epoch's end — above the torch thread count, other work shared the cores and the "
      "timings are slower than the machine can do.</p>")
    a("<table id=\"cost-results\"><thead><tr><th>Variant</th>" + "".join(f"<th>{escape(h)}</th>" for _, h, _, _ in COST_COLUMNS)
      + "</tr></thead><tbody>")
    for name, v in ordered(results):
        a(f"<tr data-variant=\"{escape(name)}\"><td>{escape(v['label'])}</td>"
          + "".join(_cell(v, k, sc, d) for k, _, sc, d in COST_COLUMNS) + "</tr>")
    a("</tbody></table>")
    a(f"<p class=\"muted\" id=\"paper-seconds\">{escape(paper_seconds_note())}</p>")

    cols = [c for c in COLUMNS if c[0] not in ("recon_accuracy", "seconds_per_epoch", "parameters")]
    conditional = any(v.get("conditional") for _, v in ordered(results))
    a("<h2 id=\"metrics\">Further metrics</h2>")
    a(f"<p class=\"muted\">FID, IS, precision and recall on {s['n_samples']} samples in the reference classifier's feature "
      "space (not Inception's: the numbers compare variants here, not with published FIDs). −ELBO and the IWAE "
      "bounds in nats per image, each column on the images its header names (the IWAE bound is ≤ the −ELBO on the "
      "same images). Clustering scores for variants that assign clusters; conditional accuracy for "
      "conditional variants. — : not defined for that variant (hover for the reason).</p>")
    a("<table id=\"metrics-results\"><thead><tr><th>Variant</th>"
      + "".join(f"<th data-key=\"{escape(c[0])}\">{escape(column_title(c[0], c[1], results))}</th>" for c in cols)
      + "</tr></thead><tbody>")
    for name, v in ordered(results):
        a(f"<tr data-variant=\"{escape(name)}\"><td>{escape(v['label'])}</td>"
          + "".join(_cell(v, k, sc, d) for k, _, sc, d in cols) + "</tr>")
    a("</tbody></table>")
    if conditional:
        a(f"<p class=\"muted\" id=\"cond-note\">{escape(COND_NOTE)}</p>")

    a(disentanglement_section(results, figs))
    task = task_rows(results)
    if task:
        a("<h2 id=\"task\">Task metrics</h2><p class=\"muted\">Figures of a variant's own task (e.g. quadrant "
          "completion: negative conditional log-likelihood of the missing quadrants in nats, <code>cond_nll</code> "
          "importance-sampled, <code>cond_neg_elbo</code> one-sample, <code>cond_nll_baseline</code> the "
          "deterministic NN).</p><ul id=\"task-metrics\">")
        for label, items in task:
            a(f"<li><b>{escape(label)}</b>: " + ", ".join(f"<code>{escape(k)}</code> {escape(txt)}" for k, txt in items) + "</li>")
        a("</ul>")
    a(paired_section(results))
    failed = [(name, e) for name, v in ordered(results) for e in v["errors"]]
    if failed:
        a("<h2 id=\"failures\">Failed runs</h2><ul>")
        for name, e in failed:
            a(f"<li class=\"fail\"><b>{escape(V[name]['label'])}</b> seed {e['seed']} ({escape(str(e.get('stage')))}): "
              f"<code>{escape(str(e.get('error')))}</code></li>")
        a("</ul><p class=\"muted\">Each failure is recorded in its run dir's failed.json; "
          "<code>vaelab compare ... --retry-failed</code> tries again.</p>")
    if bars:
        a("<h2 id=\"bars\">Main metrics</h2><div class=\"card\">" + _img(bars, None, "bar chart of the main metrics") + "</div>")

    # ----- figures ------------------------------------------------------------------------------------
    a("<h2 id=\"samples\">Samples and reconstructions (Figs 17, 18)</h2>")
    a("<p class=\"muted\">Each variant's first successful seed, as drawn when that run was evaluated (its "
      "<code>figures/</code>): 100 prior samples with sample seed 0 in a 10 × 10 grid "
      "(conditional variants: column j is class j; a variant that samples through a prior of its own, such as VQ-VAE's "
      "PixelCNN, shows how many epochs that prior trained — with a short budget its samples are not yet digits); below, the first "
      f"{n_recon} test images (top row) and their reconstructions (bottom row).</p><div class=\"grid\">")
    for name, v in ordered(results):
        f = figs.get(name, {})
        phases = v.get("phases") or []
        trained = ("<div class=\"muted phases\">trained: " + escape(", ".join(f"{p} {e} epoch{'s' if e != 1 else ''}" for p, e in phases))
                   + "</div>") if len(phases) > 1 else ""
        a(f"<div class=\"card\"><h3>{escape(v['label'])}{_seed_note(f)}</h3>" + trained
          + _img(f.get("samples"), f.get("samples_reason"), f"{name} samples")
          + "<div class=\"muted\">originals / reconstructions</div>"
          + _img(f.get("recon"), f.get("recon_reason"), f"{name} reconstructions") + "</div>")
    a("</div>")

    a("<h2 id=\"traversals\">Latent traversals (Fig. 5)</h2>")
    a("<p class=\"muted\">Gaussian-latent variants: each row sets one latent dimension to −3 … 3 with the others at "
      "the posterior mean of one test image (of median ink among the first 100). Rows are the most active dimensions (largest variance of the "
      "posterior mean over 500 test images), at most 16.</p><div class=\"grid\">")
    for name, v in ordered(results):
        f = figs.get(name, {})
        note = f" <span class=\"muted\">({f['traversal_dims']} of {f['latent_dims']} dims)</span>" if f.get("traversal") else ""
        a(f"<div class=\"card\"><h3>{escape(v['label'])}{note}</h3>" + _img(f.get("traversal"), f.get("traversal_reason"),
                                                                          f"{name} traversal") + "</div>")
    a("</div>")

    a("<h2 id=\"maps\">Latent maps (Fig. 16)</h2>")
    a("<p class=\"muted\">Embeddings (<code>variant.embed</code>, the posterior mean) of a fixed subsample of "
      f"{map_points} test images, coloured by label: the latent itself when it is 2-d, the sphere for a 3-d S-VAE, "
      "else t-SNE (scikit-learn, PCA initialisation, seed 0).</p><div class=\"grid\">")
    for name, v in ordered(results):
        f = figs.get(name, {})
        a(f"<div class=\"card\"><h3>{escape(v['label'])}</h3>" + _img(f.get("map"), f.get("map_reason"), f"{name} latent map") + "</div>")
    a("</div>")

    a("<h2 id=\"curves\">Loss curves</h2><p class=\"muted\">Training loss (solid, mean over each epoch) and test loss "
      "(dashed) per epoch, every seed; multi-phase variants show their phases one after another.</p><div class=\"grid\">")
    for name, v in ordered(results):
        f = figs.get(name, {})
        units = "; ".join(f"{ph}: {lab}" for ph, lab in (v.get("loss_labels") or {}).items())
        a(f"<div class=\"card\" data-variant=\"{escape(name)}\"><h3>{escape(v['label'])}</h3>"
          + _img(f.get("loss"), f.get("loss_reason"), f"{name} loss curves")
          + f"<div class=\"muted loss-unit\">{escape(units)}</div></div>")
    a("</div>")

    # ----- provenance -----------------------------------------------------------------------------------
    if zsl:
        a(zsl_section(zsl))
    if sequences:
        a(sequence_section(sequences))
    a("<h2 id=\"provenance\">How this report was made</h2><dl>")
    prov = [
        ("command", results.get("command") or "?"),
        ("the same, every setting spelled out", results.get("command_equivalent") or "?"),
        ("started / finished", f"{results['started']} / {results['finished']} ({results['seconds']:.0f}s of work in the last invocation)"),
        ("machine", f"{m['cpu']}; {m['cores']} cores ({m['usable_cores']} usable), torch threads {m['torch_threads']}, "
                    f"OMP_NUM_THREADS={m.get('omp_num_threads')}, {m.get('memory_gib')} GiB RAM; {m['platform']}; host {m['hostname']}"),
        ("compute, all runs", compute_line(results)),
        ("versions", ", ".join(f"{k} {val}" for k, val in env["versions"].items())),
        ("vaelab commit", env.get("git_commit") or "unknown"),
    ]
    for k, val in prov:
        a(f"<dt>{escape(k)}</dt><dd><code>{escape(str(val))}</code></dd>")
    a("</dl><p class=\"muted\">Timings depend on the machine and on what else ran on it.</p>")
    a("<p class=\"muted\">Raw numbers: <a href=\"../results.json\">results.json</a>, <a href=\"../results.csv\">results.csv</a>, "
      "<a href=\"../results.md\">results.md</a>; each run's files are under <code>runs/</code>.</p>")
    a("</body></html>\n")
    return "".join(h)


def disentanglement_section(results: dict[str, Any], figs: dict[str, dict[str, Any]]) -> str:
    """The disentanglement table (mean ± sd over seeds, one row per variant) and each variant's factor
    traversal; empty when no run carries disentanglement metrics (a dataset without factors)."""
    cols = disentanglement_columns(results)
    if not cols:
        return ""
    h = ["<h2 id=\"disentanglement\">Disentanglement</h2>",
         f"<p class=\"muted\">{escape(DISENTANGLEMENT_NOTE)} Counts: {escape(counts_text(disentanglement_counts(results)))}. "
         "— : not defined for that variant (hover for the reason).</p>",
         "<table id=\"disentanglement-results\"><thead><tr><th>Variant</th><th>Seeds (n)</th>"
         + "".join(f"<th data-key=\"{escape(k)}\">{escape(t)}</th>" for k, t, _, _ in cols) + "</tr></thead><tbody>"]
    for name, v in ordered(results):
        h.append(f"<tr data-variant=\"{escape(name)}\"><td>{escape(v['label'])}</td><td>{v['n_ok']}</td>"
                 + "".join(_cell(v, k, sc, d) for k, _, sc, d in cols) + "</tr>")
    h.append("</tbody></table>")
    h.append("<h3 id=\"factor-traversals\">Latent traversals on dSprites</h3><p class=\"muted\">Each variant's first "
             "successful seed, drawn when it was evaluated: for one test image of each shape (the input, left), every "
             "latent dimension set to −2 … 2 with the others at the image's posterior mean, rows ordered by the "
             "dimension's mean KL to the prior over 500 test images (an unused dimension has KL ≈ 0 and changes "
             "nothing).</p><div class=\"grid\">")
    for name, v in ordered(results):
        f = figs.get(name, {})
        h.append(f"<div class=\"card\" data-variant=\"{escape(name)}\"><h3>{escape(v['label'])}{_seed_note(f)}</h3>"
                 + _img(f.get("factor_traversal"), f.get("factor_traversal_reason"), f"{name} factor traversal") + "</div>")
    h.append("</div>")
    return "".join(h)


def paired_section(results: dict[str, Any]) -> str:
    """The paired IWAE differences of results.json (``paired_iwae``); empty when it has none."""
    rows = paired_rows(results)
    if not rows:
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in PAIRED_HEADERS)
    body = "".join("<tr><td>" + "</td><td>".join(escape(c) for c in r) + "</td></tr>" for r in rows)
    return (f"<h2 id=\"paired\">{escape(PAIRED_TITLE)}</h2><p class=\"muted\">{escape(paired_note(results))}</p>"
            f"<table id=\"paired-iwae\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _paper(p: dict[str, Any], key: str) -> str:
    if key in p:
        return f'<td class="paper">{p[key]:g}</td>'
    return '<td class="paper na" title="not in the seed paper\'s Table 2">—</td>'


def _seed_note(f: dict[str, Any]) -> str:
    return f" <span class=\"muted\">(seed {f['seed']})</span>" if "seed" in f else ""


def zsl_page(zsl: dict[str, Any]) -> str:
    """A page holding only the zero-shot section."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">"
            f"<title>vaelab zsl</title><style>{CSS}</style></head><body>{zsl_section(zsl)}</body></html>\n")


def sequence_page(res: dict[str, Any]) -> str:
    """A page holding only the sequence section."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">"
            f"<title>vaelab sequences</title><style>{CSS}</style></head><body>{sequence_section(res)}</body></html>\n")
