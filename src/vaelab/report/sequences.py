"""The sequence section of the HTML report (``vaelab sequences``): the judge, the table of S3VAE, its
ablations and DSVAE (mean ± sd over seeds), and the frame strips and GIFs of every row's lowest-seed
run, which that run saved when it was evaluated (:mod:`vaelab.run_figures`) and :func:`gather`
copies beside the page. Written on its own page (``OUT/report/sequences.html``) and added to the
compare report when the study's output directory holds ``sequence-results.json``;
:func:`vaelab.report.write_sequence_page` writes the page."""
from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from ..study.sequences import COLUMNS, _cell
from .saved import copy, entry, read_index

PICTURES = (("samples", "prior samples (4 per row)"), ("reconstructions", "test sequences and reconstructions"),
            ("swaps", "content row, motion row, swap"), ("content-fixed", "test sequence, then its z_f with new dynamics"))


def gather(out: Path, res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``res["pictures"]`` (row → {"seed", "run_dir"}) resolved for the page: row → {"seed", "files"}, the
    run's saved strips and GIFs copied to ``OUT/report/img/ROW/`` (paths relative to the page), or
    {"seed", "reason"} when the run has none. Results written before pictures came from the runs'
    evaluations already list "files" (made into report/img/ then): kept as they are."""
    pictures = {}
    for key, pics in (res.get("pictures") or {}).items():
        if "run_dir" not in pics:
            pictures[key] = pics
            continue
        run, img = Path(out) / pics["run_dir"], Path(out) / "report" / "img" / key
        index, files, reason = read_index(run), [], None
        for name, _ in PICTURES:
            e, reason = entry(run, index, name, "vaelab sequences")
            for part in ("file", "gif"):
                if reason is None and part in e:
                    reason = copy(run, e[part], img / e[part])
                    files.append(f"img/{key}/{e[part]}")
            if reason is not None:
                break
        pictures[key] = {"seed": pics["seed"], **({"files": files} if reason is None else {"reason": reason})}
    return pictures


def section(res: dict[str, Any]) -> str:
    st, judge = res["settings"], res.get("judge") or {}
    h = [f"<h2 id=\"sequences\">Sequences: S3VAE, its ablations and DSVAE on {escape(st['dataset'])}</h2>",
         f"<p>{st['epochs']} epochs, Adam lr {st['lr']:g}, batch {st['batch_size']}; seeds "
         f"{', '.join(map(str, st['seeds']))}; mean ± sd over seeds (n runs). Content: a test sequence's static code "
         "z_f with dynamics drawn from the learned prior, judged digit accuracy; IS, H(y|x), H(y) (nats) of the judge "
         "on those sequences. Motion: the test sequence's dynamics with a new z_f, judged direction accuracy. "
         "Swap: z_f of one test sequence with z_1:T of another (docs/equations.md, \"S3VAE and DSVAE\").</p>"]
    if judge.get("test_accuracy") is not None:
        h.append(f"<p>Judge <code>{escape(str(judge.get('stem')))}</code> on the real test sequences: digit "
                 f"{100 * judge['test_accuracy']:.2f}%, motion {100 * (judge.get('motion_accuracy') or 0):.2f}%.</p>")
    if res.get("command"):
        h.append(f"<p class=\"muted\"><code>{escape(res['command'])}</code></p>")
    h.append("<table><tr><th class=\"text\">model</th>" + "".join(f"<th>{escape(c[1])}</th>" for c in COLUMNS) + "<th>n</th></tr>")
    for r in res["rows"]:
        h.append(f"<tr><td class=\"text\">{escape(r['label'])}</td>" + "".join(f"<td>{_cell(r, c[0])}</td>" for c in COLUMNS)
                 + f"<td>{r['n']}</td></tr>")
    h.append("</table>")
    labels = {r["row"]: r["label"] for r in res["rows"]}
    for key, pics in (res.get("pictures") or {}).items():
        h.append(f"<h3>{escape(labels.get(key, key))} (seed {pics['seed']})</h3><div class=\"grid\">")
        if "files" not in pics:  # a run without saved pictures: why, and how to make them
            h.append(f"<div class=\"na-box\">— {escape(pics.get('reason') or 'no pictures')}</div></div>")
            continue
        paths = pics["files"]
        for name, caption in PICTURES:
            gif = next((p for p in paths if Path(p).name.startswith(name + "-") and p.endswith(".gif")), None)
            png = next((p for p in paths if Path(p).name.startswith(name + "-") and p.endswith(".png")), None)
            if gif:
                link = f" <a href=\"{escape(png)}\">frames</a>" if png else ""
                h.append(f"<figure><img src=\"{escape(gif)}\" alt=\"{escape(caption)}\"><figcaption>{escape(caption)}"
                         f"{link}</figcaption></figure>")
        h.append("</div>")
    return "\n".join(h)

