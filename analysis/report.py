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

import numpy as np

from analysis.core.atomic import write_text
from analysis.sensitivity.model import MethodEntry, Sensitivity


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
SENSITIVITY_SOURCES = ("scan", "cwola", "autoencoders", "baselines")


def collect_sensitivity(results: Path) -> Sensitivity:
    """Every stage's entries (``<stage>/sensitivity.json``) in the results' ``sensitivity.json``."""
    target = results / "sensitivity.json"
    paths = [results / stage / "sensitivity.json" for stage in SENSITIVITY_SOURCES]
    combined = Sensitivity.combined(p for p in paths if p.is_file())
    target.unlink(missing_ok=True)
    if combined.methods:
        combined.write(target)
    return combined


def _end(value: float | None, limit: float | None) -> str:
    if value is not None:
        return f"{value:.0f}"
    return f"< {limit:.0f}" if limit is not None else "not reached"


def _crossing(entry: MethodEntry, sigma: int, kind: str) -> str:
    """'420 [310, 600]' (median [band]), '< 300 (bound)' or 'not reached' for a table cell."""
    attr = "global_" if kind == "global" else "local"
    value = getattr(getattr(entry, f"n_signal_{sigma}sigma"), attr)
    limit = getattr(getattr(entry, f"n_signal_{sigma}sigma_limit"), attr)
    band = getattr(entry, f"n_signal_{sigma}sigma_band")
    (lo, hi), (lo_limit, hi_limit) = getattr(band, attr), getattr(band, f"{kind}_limit")
    if value is None and limit is None and lo is None and lo_limit is None:
        return "not reached"
    if lo is None and lo_limit is not None and value is not None:
        lo_limit = min(lo_limit, value)  # the 84 % curve crosses before the median
    return f"{_end(value, limit)} [{_end(lo, lo_limit)}, {_end(hi, hi_limit)}]"


NULL_Z_MAX = 1.5  # median global Z of the background-only realisations above which the null fails
NULL_KS_MIN = 0.01  # KS p of their global p-values against uniform below which the null fails


def null_failure(entry: MethodEntry) -> str | None:
    """Why a method's background-only realisations contradict a calibrated null (None: they do
    not): a median global Z at N = 0 above ``NULL_Z_MAX`` or a KS p below ``NULL_KS_MIN``. Its
    crossings are then not sensitivities."""
    reasons = []
    zero = next((p for p in entry.points if p.n_signal == 0), None)
    if zero is not None and zero.z_global.median > NULL_Z_MAX:
        reasons.append(f"median global Z {zero.z_global.median:+.2f} at N = 0")
    if entry.null_ks_pvalue is not None and entry.null_ks_pvalue < NULL_KS_MIN:
        reasons.append(f"KS p = {entry.null_ks_pvalue:.2g} against uniform p-values")
    return "; ".join(reasons) or None


def method_table(entries: list[MethodEntry]) -> tuple[list[str], list[list[str]]]:
    """The headline table: global expected N(3, 5 sigma) with bands, local beside them."""
    head = ["method", "realisations", "N(3σ) global", "N(5σ) global", "N(3σ) local", "N(5σ) local",
            "Z global at N=0", "null KS p"]  # fmt: skip
    rows = []
    for e in entries:
        zero = e.point(0) if any(p.n_signal == 0 for p in e.points) else None
        z0 = "" if zero is None else f"{zero.z_global.median:+.2f} [{zero.z_global.lo:+.2f}, {zero.z_global.hi:+.2f}]"
        lumi = "" if e.luminosity_fraction == 1 else f" (at {e.luminosity_fraction:.0%} luminosity, N rescaled)"
        failed = " (null not calibrated)" if null_failure(e) else ""
        rows.append([
            e.method + lumi + failed, str(e.realizations), _crossing(e, 3, "global"), _crossing(e, 5, "global"),
            _crossing(e, 3, "local"), _crossing(e, 5, "local"), z0,
            "" if e.null_ks_pvalue is None else f"{e.null_ks_pvalue:.3g}",
        ])  # fmt: skip
    return head, rows


def z_table(entries: list[MethodEntry]) -> tuple[list[str], list[list[str]]]:
    """Median global (local) Z with the 16-84 % band at every injected N; '>' marks a bound."""
    sizes = [p.n_signal for p in entries[0].points]
    head = ["method", *[f"N = {n}" for n in sizes]]
    rows = []
    for e in entries:
        cells = []
        for p in e.points:
            mark = ">" if p.bound else ""
            cells.append(f"{mark}{p.z_global.median:.2f} [{p.z_global.lo:.2f}, {p.z_global.hi:.2f}] ({p.z_local.median:.2f})")
        rows.append([e.method, *cells])
    return head, rows


METHOD_ORDER = ("cwola_pfn", "pfn_auc", "bumphunter", "dijet_fit")


def _ordered(entries: list[MethodEntry]) -> list[MethodEntry]:
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(entries, key=lambda e: (rank.get(e.method, len(rank)), e.method))


def _style(index: int) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    markers = "os^Dv<>pPX*h"
    return {"color": colours[index % len(colours)], "marker": markers[index % len(markers)]}


def comparison_figure(entries: list[MethodEntry], kind: str = "global", signal: str = ""):
    """Median Z with its 16-84 % band (error bar) versus injected events, one colour and marker
    per method (markers spread a little in N to stay apart); a median that is only a lower bound
    is an open marker with an upward arrow."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(13, 7.5))
    ordered = _ordered(entries)
    top = 5.6
    for i, e in enumerate(ordered):
        style = _style(i)
        pts = [p for p in e.points if p.n_signal > 0]
        n = np.array([p.n_signal for p in pts], dtype=float) * 1.035 ** (i - (len(ordered) - 1) / 2)
        band = [getattr(p, f"z_{kind}") for p in pts]
        bound = np.array([p.bound if kind == "global" else p.bound_local for p in pts])
        med, lo, hi = (np.array([getattr(b, q) for b in band]) for q in ("median", "lo", "hi"))
        top = max(top, float(hi.max()) + 0.8)
        ax.plot(n, med, "-", color=style["color"], lw=1, alpha=0.6)
        ax.errorbar(n[~bound], med[~bound], yerr=[med[~bound] - lo[~bound], hi[~bound] - med[~bound]],
                    linestyle="none", capsize=3, ms=7, **style, label=e.method)  # fmt: skip
        if bound.any():
            ax.plot(n[bound], med[bound], linestyle="none", marker=style["marker"], ms=7, mfc="white",
                    mec=style["color"], label=None if (~bound).any() else e.method)  # fmt: skip
            for x, y in zip(n[bound], med[bound], strict=True):
                ax.annotate("", (x, y + 0.5), (x, y), arrowprops={"arrowstyle": "->", "color": style["color"]})
    for z in (3, 5):
        ax.axhline(z, color="grey", linestyle="--", linewidth=1)
        ax.text(0.005, z + 0.05, f"{z}σ", transform=ax.get_yaxis_transform(), va="bottom", color="grey", fontsize=14)
    ax.set_ylim(min(ax.get_ylim()[0], -1.0), top)
    ax.set_xscale("log")
    ax.set_xlabel("injected signal events N")
    ax.set_ylabel(f"expected {kind} Z", fontsize=22)
    title = f"median {kind} Z over realisations, bars: 16-84 %"
    ax.set_title(f"{signal}: {title}" if signal else title, fontsize=14, loc="right")
    ax.legend(fontsize=13, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="open: lower bound", title_fontsize=12)
    fig.tight_layout()
    return fig


def calibration_figure(entries: list[MethodEntry], signal: str = ""):
    """Empirical CDF of every method's global p on background-only realisations against uniform."""
    import matplotlib.pyplot as plt
    import mplhep as hep

    hep.style.use("CMS")
    fig, ax = plt.subplots(figsize=(12, 7))
    ax.plot([0, 1], [0, 1], color="black", lw=1, linestyle="--", label="uniform")
    for i, e in enumerate(_ordered(entries)):
        p = np.sort(np.asarray(e.null_p_global))
        if not len(p):
            continue
        ecdf = np.arange(1, len(p) + 1) / len(p)
        ks = "" if e.null_ks_pvalue is None else f" (KS p = {e.null_ks_pvalue:.2g})"
        ax.step(np.r_[0, p, 1], np.r_[0, ecdf, 1], where="post", color=_style(i)["color"], label=f"{e.method}{ks}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("global p-value, background-only realisations")
    if signal:
        ax.set_title(f"{signal}: realisations of N = 0", fontsize=14, loc="right")
    ax.set_ylabel("fraction of realisations with p below", fontsize=20)
    ax.legend(fontsize=11, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _cutflow_paragraph(results: Path) -> str | None:
    cutflow = _read(results / "process" / "cutflow.json")
    if not cutflow:
        return None
    parts = [f"{name}: {d['cutflow']['all']} generated, {d['cutflow']['n_jets']} selected 2-jet events"
             for name, d in cutflow["datasets"].items()]  # fmt: skip
    return "Events: " + "; ".join(parts) + "."


def protocol_paragraphs(data: Sensitivity) -> list[str]:
    p = data.protocol
    if p is None:
        return []
    lumi = "" if p.luminosity_pb is None else f" (L = {p.luminosity_pb:.3g} pb^-1)"
    resampling = {
        "model_poisson": "every background event with a Poisson multiplicity whose rate makes each m_jj bin's "
        "expectation the smooth background model's, so realisations scatter about the model with Poisson spread",
        "poisson": "a plain Poisson bootstrap of the background events (rate 1)",
    }[p.resampling]
    model = p.background_model
    regions = "; ".join(f"{name}: {lo:.0f}-{hi:.0f} GeV" for name, (lo, hi) in p.signal_region_gev.items())
    return [
        f"Every method runs on the same {p.realizations} background realisations of the analysis luminosity: "
        f"{p.background_events} selected background events{lumi}, {resampling}. For each injected N the signal "
        f"events are the first N of a per-realisation permutation of the signal pool (nested: the N = "
        f"{p.n_signal[-1]} draw contains the smaller ones). Seed {p.seed}.",
        f"Histogram methods search {p.mjj_range_gev[0]:.0f}-{p.mjj_range_gev[1]:.0f} GeV; the background model "
        f"({model.get('model', '?')}) describes the sample there with chi2/ndf = {model.get('chi2_ndf', float('nan')):.2f} "
        f"({model.get('chi2', float('nan')):.1f} / {model.get('ndf', '?')}). Signal region (16-84 % of the signal's m_jj): {regions}.",
        "Z is one-sided, Z = Φ⁻¹(1 - p), the median over realisations with its 16-84 % band (expected "
        "significance). Global includes each method's look-elsewhere effect (what that is for each method is said "
        "under its table); local does not. N(3σ), N(5σ): injected events where the median Z reaches 3, 5 (linear "
        "interpolation; band from the 84 % and 16 % curves). A p-value beyond what the toys or their fitted "
        "tail support is a bound ('>' in the Z table, open markers in the plot) and never gives a crossing.",
    ]  # fmt: skip


def signal_sections(data: Sensitivity) -> list[Section]:
    """Per signal: the method table (with what each global Z means) and the Z table with the
    comparison plots (``comparison_<signal>.png``, ``comparison_local_<signal>.png``)."""
    sections = []
    for signal in signal_names(data):
        entries = _ordered([e for e in data.methods if e.signal == signal])
        fingerprints = {e.fingerprint for e in entries}
        same = ("All methods ran on the same events (one realisation fingerprint, "
                f"{entries[0].background_events} expected background events each)."
                if len(fingerprints) == 1 else
                f"WARNING: the methods ran on {len(fingerprints)} different sets of realisations.")  # fmt: skip
        sob = entries[0].points
        sob_text = ", ".join(f"N = {p.n_signal}: {p.s_over_b:.2%}" for p in sob if p.s_over_b is not None)
        by_meaning: dict[str, list[str]] = {}
        for e in entries:
            by_meaning.setdefault(e.z_global_meaning, []).append(e.method)
        meaning = [f"{', '.join(names)}: {text}" for text, names in by_meaning.items()]
        failures = [f"{e.method}: {why}" for e in entries if (why := null_failure(e))]
        warning = ([f"NULL NOT CALIBRATED — {'; '.join(failures)}. On background-only realisations these methods "
                    "see signals that are not there; their crossings are not sensitivities."] if failures else [])
        sections.append(Section(
            f"Method comparison: {signal}",
            [same, f"S/B in the signal region: {sob_text}.", *warning, "Global means — " + "; ".join(meaning) + "."],
            method_table(entries),
        ))  # fmt: skip
        sections.append(Section(f"Expected Z at every N: {signal}",
                                ["Median global Z [16 %, 84 %] (median local Z in parentheses)."],
                                z_table(entries),
                                images=[(f"expected global Z versus injected {signal} events", f"comparison_{signal}.png"),
                                        (f"expected local Z versus injected {signal} events",
                                         f"comparison_local_{signal}.png")]))  # fmt: skip
    return sections


def signal_names(data: Sensitivity) -> list[str]:
    """The measured signals in the order they were first entered (the config's order)."""
    return list(dict.fromkeys(e.signal for e in data.methods))


def write_figures(results: Path, data: Sensitivity) -> None:
    """Per signal: the global and local comparison plots and the null calibration plot."""
    from analysis.core.plots import save

    for signal in signal_names(data):
        entries = [e for e in data.methods if e.signal == signal]
        save(comparison_figure(entries, "global", signal), results / f"comparison_{signal}.png")
        save(comparison_figure(entries, "local", signal), results / f"comparison_local_{signal}.png")
        save(calibration_figure(entries, signal), results / f"null_calibration_{signal}.png")


def method_sections(config: Any, data: Sensitivity) -> list[Section]:
    """The methods' own plots, per signal directory (``<stage>/<signal>/``)."""
    labels = [c.injection.label for c in config.signal_configs()]
    models = [f"{m.removesuffix('_ae')}_ae" for m in config.autoencoders.models]

    def each(caption: str, rel: str) -> list[tuple[str, str]]:
        return [(f"{caption} ({label})", rel.format(label=label)) for label in labels]

    return [
        Section("Null calibration",
                ["Global p of every method on the background-only realisations (N = 0) against the uniform "
                 "distribution: a calibrated null follows the diagonal; the KS p-value is in the legend and the table."],
                images=[(f"empirical CDF of the background-only global p-values ({s})", f"null_calibration_{s}.png")
                        for s in signal_names(data)]),
        Section("Background model and dijet mass spectrum",
                ["The sample's background-only m_jj spectrum and an injected realisation over the background model "
                 "behind the realisations, with pulls."],
                images=each("m_jj spectrum and background model", "baselines/{label}/spectrum_fit.png")),
        Section("Adjacent-bin PFN scan", ["AUC mean and std over random samples per adjacent bin pair (no injection), "
                                          "and the PFN's Z versus injected events."],
                images=[("AUC scan", "scan/auc_scan.png"),
                        *each("PFN sensitivity", "scan/{label}/sensitivity_pfn_auc.png")]),
        Section("CWoLa hunting (cwola_pfn)",
                ["An event-level PFN trained on each signal-region window against its sidebands (k-fold by event), "
                 "the top epsilon of events by score fitted in the sidebands. Sculpting: fits of the background-only "
                 "selected spectra at every epsilon. Truth: ROC and significance improvement of one signal-region model."],
                images=[*each("cwola_pfn sensitivity", "cwola/{label}/sensitivity_cwola_pfn.png"),
                        *each("background-only selected spectra (sculpting check)", "cwola/{label}/cwola_sculpting.png"),
                        *each("ROC and SIC against the injected events' truth", "cwola/{label}/cwola_roc_sic.png")]),
        Section("Wavelet p-value maps and autoencoders", ["p-value versus injected events for every autoencoder."],
                images=each("p-value versus signal size", "autoencoders/{label}/pvalue_vs_signal.png")
                + [(f"losses {m} ({labels[0]})", f"autoencoders/{labels[0]}/losses_{m}.png") for m in models]),
        Section("Classical baselines", [],
                images=[*each("BumpHunter", "baselines/{label}/sensitivity_bumphunter.png"),
                        *each("background + Gaussian mass scan", "baselines/{label}/sensitivity_dijet_fit.png")]),
        Section("Toy spectra", ["The configured toy signal, background and wavelet (configs/*.yaml)."],
                images=[(k, f"toys/{k}.png") for k in ("clean", "fluctuations", "cwt-clean")]),
    ]  # fmt: skip


def write_report(results: Path, config: Any) -> tuple[Path, Path]:
    """sensitivity.json, the comparison and calibration plots and report.md / report.html."""
    results = Path(results)
    data = collect_sensitivity(results)
    write_figures(results, data)
    intro = [
        "Model-agnostic search for a dijet resonance: CWoLa hunting with an event-level PFN, the adjacent-bin "
        "PFN (AUC of neighbouring m_jj bins), autoencoders on wavelet p-value maps, BumpHunter and a background "
        "+ Gaussian mass scan, measured with one protocol on the same events, one table per signal.",
    ]
    if (para := _cutflow_paragraph(results)) is not None:
        intro.append(para)
    sections = [Section("Analysis", intro + protocol_paragraphs(data)), *signal_sections(data),
                *method_sections(config, data)]  # fmt: skip
    return build_report(results, [s for i, s in enumerate(sections) if i == 0 or s.table or _any_image(results, s)])


def _any_image(results: Path, section: Section) -> bool:
    return any((results / rel).is_file() for _, rel in section.images)
