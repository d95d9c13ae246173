"""The analysis report: ``report.md`` and ``report.html`` in the results directory.

The report is built from the results files (``sensitivity.json``, ``auc_scan.json``,
``pvalue_vs_signal.json``, ``baselines.json``, ``run.json``) and links every plot that
exists; it never recomputes anything.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.atomic import write_text


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None
    images: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative path)


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "not reached"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def sensitivity_section(results: Path) -> Section | None:
    data = _read(results / "sensitivity.json")
    if not data:
        return None
    rows = [
        [m["method"], _fmt(m.get("n_signal_3sigma")), _fmt(m.get("n_signal_5sigma")),
         ", ".join(f"{p['n_signal']:g}: {p['z']:.2f}" for p in m.get("points", []))]
        for m in data["methods"]
    ]  # fmt: skip
    section = Section(
        "Method comparison",
        ["Signal events each method needs for a 3 and 5 sigma local significance, on the same "
         "background sample with the same injected events. Z versus injected events in the last column."],
        (["method", "N(3 sigma)", "N(5 sigma)", "Z at N"], rows),
    )  # fmt: skip
    return section


def build_report(results: Path, sections: list[Section]) -> tuple[Path, Path]:
    """Write report.md and report.html for ``sections``, linking only plots that exist."""
    run = _read(results / "run.json") or {}
    header = [
        f"seed {run.get('seed')}, git revision {run.get('git_revision', 'unknown')}, "
        f"dijetscan {run.get('packages', {}).get('dijetscan', '?')}; provenance in run.json."
    ]
    timings = run.get("timings_s", {})
    if timings:
        header.append("Stage times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".")
    if run.get("reused"):
        header.append("Reused unchanged from an earlier run: " + ", ".join(run["reused"]) + ".")
    sections = [Section("dijetscan report", header), *sections]
    md, body = [], []
    for index, sec in enumerate(sections):
        level = "#" if index == 0 else "##"
        md.append(f"{level} {sec.title}\n")
        body.append(f"<h{len(level)}>{html.escape(sec.title)}</h{len(level)}>")
        for para in sec.paragraphs:
            md.append(para + "\n")
            body.append(f"<p>{html.escape(para)}</p>")
        if sec.table:
            head, rows = sec.table
            md.append("| " + " | ".join(head) + " |")
            md.append("|" + "---|" * len(head))
            md.extend("| " + " | ".join(row) + " |" for row in rows)
            md.append("")
            cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><tr>{cells}</tr>{trs}</table>")
        for caption, rel in sec.images:
            if (results / rel).is_file():
                md.append(f"![{caption}]({rel})\n")
                body.append(f'<figure><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip
    style = (
        "body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}"
        "img{max-width:100%}figure{margin:1em 0}"
    )
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>dijetscan report</title>" \
           f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"  # fmt: skip
    md_path, html_path = results / "report.md", results / "report.html"
    write_text(md_path, "\n".join(md) + "\n")
    write_text(html_path, page)
    return md_path, html_path


# -- the default chain's report ---------------------------------------------------------------
SENSITIVITY_SOURCES = ("scan", "autoencoders", "baselines")


def collect_sensitivity(results: Path) -> list[dict[str, Any]]:
    """Every method's entry from the stages' sensitivity.json files, written to the top level."""
    from analysis.sensitivity import merge_method

    target = results / "sensitivity.json"
    target.unlink(missing_ok=True)
    methods = []
    for stage in SENSITIVITY_SOURCES:
        data = _read(results / stage / "sensitivity.json") or {"methods": []}
        for entry in data["methods"]:
            merge_method(target, {**entry, "stage": stage})
            methods.append(entry)
    return methods


def comparison_figure(methods: list[dict[str, Any]]):
    """Z versus injected signal events of every method, with the 3 and 5 sigma lines."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(10, 7))
    for entry in methods:
        pts = [p for p in entry["points"] if p["n_signal"] > 0]
        ax.plot([p["n_signal"] for p in pts], [p["z"] for p in pts], "o-", label=entry["method"])
    for z in (3, 5):
        ax.axhline(z, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("injected signal events")
    ax.set_ylabel("significance Z")
    ax.legend(fontsize=12, ncol=2)
    hep.label.exp_text("dijetscan", "method comparison", ax=ax, loc=0)
    return fig


def _cutflow_paragraph(results: Path) -> str | None:
    cutflow = _read(results / "process" / "cutflow.json")
    if not cutflow:
        return None
    parts = [f"{name}: {d['cutflow']['all']} generated, {d['cutflow']['n_jets']} selected 2-jet events"
             for name, d in cutflow["datasets"].items()]  # fmt: skip
    inj = cutflow.get("injection") or {}
    extra = f" Injection: {inj.get('kind')}, sizes {inj.get('sizes')}." if inj else ""
    return "Events: " + "; ".join(parts) + "." + extra


def write_report(results: Path, config: Any) -> tuple[Path, Path]:
    """sensitivity.json, comparison.png and report.md / report.html of a chain's results."""
    from analysis.plots import save

    results = Path(results)
    methods = collect_sensitivity(results)
    if methods:
        save(comparison_figure(methods), results / "comparison.png")
    intro = [
        "Model-agnostic search for a dijet resonance: the same background sample and the same "
        "injected signal events analysed by the adjacent-bin PFN (CWoLa-style AUC), autoencoders on "
        "wavelet p-value maps, BumpHunter and a background + Gaussian fit.",
    ]
    if (para := _cutflow_paragraph(results)) is not None:
        intro.append(para)
    sections = [Section("Analysis", intro)]
    comparison = sensitivity_section(results)
    if comparison is not None:
        comparison.images.append(("Z versus injected events, every method", "comparison.png"))
        comparison.paragraphs.append(
            "PFN: Z = (mean AUC - null mean) / null std of the affected bin pair. Autoencoders: "
            "efficiency p-value of the reconstruction error (floored at 1 / background test maps). "
            "BumpHunter: local Z of the most significant window against the background fit of the "
            "background-only spectrum (global Z per point in sensitivity.json). Fit: local Z from the "
            "profile likelihood ratio of a Gaussian at the signal's reconstructed mass."
        )
        sections.append(comparison)
    sections += [
        Section("Dijet mass spectrum", ["Background-only and injected m_jj spectra over the background fit."],
                images=[("m_jj spectrum and background fit", "baselines/spectrum_fit.png")]),
        Section("Adjacent-bin PFN scan", ["AUC mean and std over random samples per adjacent bin pair (no injection), "
                                          "and the PFN's Z versus injected events for the affected pair."],
                images=[("AUC scan", "scan/auc_scan.png"), ("PFN sensitivity", "scan/sensitivity_pfn_auc.png")]),
        Section("Wavelet p-value maps and autoencoders", ["p-value versus signal size for every autoencoder."],
                images=[("p-value versus signal size", "autoencoders/pvalue_vs_signal.png")]
                + [(f"losses {m}_ae", f"autoencoders/losses_{m}_ae.png") for m in config.autoencoders.models]),
        Section("Classical baselines", [],
                images=[("BumpHunter", "baselines/sensitivity_bumphunter.png"),
                        ("background + Gaussian fit", "baselines/sensitivity_dijet_fit.png")]),
        Section("Toy spectra", ["The configured toy signal, background and wavelet (configs/*.yaml)."],
                images=[(k, f"toys/{k}.png") for k in ("clean", "fluctuations", "cwt-clean")]),
    ]  # fmt: skip
    return build_report(results, [s for i, s in enumerate(sections) if i == 0 or s.table or _any_image(results, s)])


def _any_image(results: Path, section: Section) -> bool:
    return any((results / rel).is_file() for _, rel in section.images)
