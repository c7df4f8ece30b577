"""The zero-shot section of the HTML report: per dataset, every method beside the baselines in each
setting (mean ± sd over folds × seeds), the any-shot curve's numbers, and f-VAEGAN-D2's published
figures on CUB / AWA2 / FLO as clearly separate context. Used by the compare report when its output
directory holds ``zsl-results.json``, and on its own page (:func:`vaelab.report.write_zsl_page`)."""
from __future__ import annotations

from html import escape
from typing import Any

from ..zsl.study import LABELS, PUBLISHED

KEYS = ("T1", "u", "s", "H")


def _cell(r: dict[str, Any], k: str) -> str:
    if r.get(k) is None:
        return "<td>–</td>"
    return f"<td>{100 * r[k]:.1f} ± {100 * r[k + '_sd']:.1f}</td>"


def _n(r: dict[str, Any]) -> str:
    return f"{r['n']} ({r['n_failed']} failed)" if r.get("n_failed") else str(r["n"])


def section(z: dict[str, Any]) -> str:
    rows = z["rows"]
    h = ["<h2 id=\"zsl\">Zero-shot learning (vaelab ZSL benchmark "
         f"v{escape(str(z.get('benchmark_version', '?')))})</h2>",
         "<p>Features of unseen classes generated from class attribute vectors, then a softmax classifier "
         "(docs/zsl.md). Per-class accuracies in %, mean ± sd over folds × seeds (n runs). T1: ZSL top-1 among "
         "unseen classes; u, s: GZSL accuracy on unseen / seen test images among all classes; H: their harmonic "
         "mean. ESZSL and f-CLSWGAN use no unlabelled data: their transductive rows run as inductive.</p>"]
    if z.get("command"):
        h.append(f"<p class=\"muted\"><code>{escape(z['command'])}</code></p>")
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        h.append(f"<h3>{escape(ds)}</h3><table><tr><th class=\"text\">method</th><th class=\"text\">setting</th>"
                 + "".join(f"<th>{k}</th>" for k in KEYS) + "<th>n</th></tr>")
        for r in sorted((r for r in rows if r["dataset"] == ds and r["shots"] == 0), key=lambda r: (r["setting"], r["method"])):
            note = (f" <span class=\"muted\">(H before self-training {100 * r['H_before_self_training']:.1f})</span>"
                    if "H_before_self_training" in r else "")
            h.append(f"<tr><td class=\"text\">{escape(LABELS.get(r['method'], r['method']))}{note}</td>"
                     f"<td class=\"text\">{escape(r['setting'])}</td>" + "".join(_cell(r, k) for k in KEYS) + f"<td>{_n(r)}</td></tr>")
        h.append("</table>")
        few = sorted((r for r in rows if r["dataset"] == ds and r["shots"] > 0), key=lambda r: (r["method"], r["shots"]))
        if few:
            h.append("<p>Any-shot (inductive; k labelled training images per unseen class):</p><table><tr>"
                     "<th class=\"text\">method</th><th>k</th>" + "".join(f"<th>{k}</th>" for k in KEYS) + "</tr>")
            for r in few:
                h.append(f"<tr><td class=\"text\">{escape(LABELS.get(r['method'], r['method']))}</td><td>{r['shots']}</td>"
                         + "".join(_cell(r, k) for k in KEYS) + "</tr>")
            h.append("</table>")
    h.append("<h3>Context: f-VAEGAN-D2 as published, on another benchmark</h3><p class=\"muted\">Inductive, ResNet-101 "
             "features of CUB, AWA2, FLO (Xian et al. 2019). Other data, features and attributes: not comparable with "
             "the tables above.</p><table><tr><th class=\"text\">dataset</th>" + "".join(f"<th>{k}</th>" for k in KEYS) + "</tr>")
    for ds, r in PUBLISHED.items():
        h.append(f"<tr><td class=\"text\">{ds}</td>" + "".join(f"<td>{r[k]}</td>" for k in KEYS) + "</tr>")
    h.append("</table>")
    return "\n".join(h)

