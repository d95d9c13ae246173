"""The analysis configuration: YAML files validated by typed (pydantic) models.

Every section is a strict model: unknown keys, wrong types and out-of-range values are
rejected, and the error names the file and the key path (``toys.signal_id: ...``).
Relative paths inside a config are resolved against the config file's directory, so a config
works from any working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from analysis.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors; validated values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ToysConfig(StrictModel):
    """Toy mass spectra: which definition files and which entries to use."""

    signals: Path = Field(Path("signals.yaml"), description="signal definitions (YAML list)")
    backgrounds: Path = Field(Path("backgrounds.yaml"), description="background definitions")
    wavelets: Path = Field(Path("wavelets.yaml"), description="wavelet definitions")
    signal_id: int = Field(0, ge=0)
    bg_id: int = Field(0, ge=0)
    wavelet_id: int = Field(0, ge=0)
    n_fluctuations: int = Field(3, ge=1, le=1000, description="fluctuated spectra drawn by `run`")


def exceeds(low_name: str, low: float, high_name: str, high: float) -> None:
    """A range's upper edge must exceed its lower one (a ValueError naming both)."""
    if high <= low:
        raise ValueError(f"{high_name} ({high}) must exceed {low_name} ({low})")


class SelectionConfig(StrictModel):
    """Dijet selection (the reference: 350 <= pT <= 450 GeV, |eta| < 1.9, jetId >= 2, exactly 2 jets)."""

    jet_pt_min: float = Field(350.0, ge=0, description="lowest jet pT in GeV (inclusive)")
    jet_pt_max: float = Field(450.0, gt=0, description="highest jet pT in GeV (inclusive)")
    jet_abs_eta_max: float = Field(1.9, gt=0, description="|eta| < this")
    jet_id_min: int = Field(2, ge=0, le=7, description="Jet_jetId >= this (0: no jet-id cut)")
    n_jets: int = Field(2, ge=2, le=10, description="events need exactly this many selected jets")

    @model_validator(mode="after")
    def _pt_window(self) -> SelectionConfig:
        exceeds("jet_pt_min", self.jet_pt_min, "jet_pt_max", self.jet_pt_max)
        return self


class HistogramsConfig(StrictModel):
    """m_jj binning: uniform bins for the spectra, plus the analysis bins of the PFN scan."""

    mjj_min: float = Field(500.0, ge=0, description="lower edge of the m_jj histograms (GeV)")
    mjj_max: float = Field(1500.0, gt=0, description="upper edge (GeV)")
    mjj_bin_width: float = Field(10.0, gt=0, description="uniform bin width (GeV)")
    analysis_bins: list[float] = Field(
        [660.0, 760.0, 860.0, 960.0, 1060.0, 1160.0], min_length=2, description="edges of the analysis bins"
    )

    @model_validator(mode="after")
    def _edges(self) -> HistogramsConfig:
        exceeds("mjj_min", self.mjj_min, "mjj_max", self.mjj_max)
        n = (self.mjj_max - self.mjj_min) / self.mjj_bin_width
        if abs(n - round(n)) > 1e-6 or not 1 <= round(n) <= 100_000:
            raise ValueError(f"mjj_bin_width ({self.mjj_bin_width}) must divide mjj_max - mjj_min into 1..100000 bins")
        if any(b <= a for a, b in zip(self.analysis_bins, self.analysis_bins[1:], strict=False)):
            raise ValueError(f"analysis_bins must increase strictly (got {self.analysis_bins})")
        return self

    @property
    def n_bins(self) -> int:
        return round((self.mjj_max - self.mjj_min) / self.mjj_bin_width)


class InjectionConfig(StrictModel):
    """Signal injection into the background m_jj spectrum (seeded by the top-level seed)."""

    kind: Literal["none", "resonance", "gluon_pairs"] = Field(
        "resonance", description="resonance: events of a signal sample; gluon_pairs: gg-matched background events in a bin"
    )
    signals: list[Literal["xgg", "wprime"]] = Field(
        ["xgg", "wprime"], min_length=1,
        description="resonance: the signal processes, each measured on its own (one method table each); "
                    "single-signal commands and the processor's injected histograms use the first",
    )  # fmt: skip
    sizes: list[int] = Field([100, 300, 1000], description="numbers of injected events k")
    mass: float | None = Field(None, gt=0, description="resonance: the signal sample's mass (null: every dataset of the process)")
    bin: int = Field(2, ge=0, description="gluon_pairs: index of the analysis bin the injected m_jj lies in")
    pool_fraction: float = Field(
        0.2, gt=0, lt=1, description="gluon_pairs: share of background events set aside as the injection pool"
    )

    @model_validator(mode="after")
    def _sizes(self) -> InjectionConfig:
        if any(k < 1 for k in self.sizes):
            raise ValueError(f"sizes must be positive event counts (got {self.sizes})")
        if len(set(self.signals)) != len(self.signals):
            raise ValueError(f"signals: {self.signals} names a process twice")
        return self

    @property
    def signal(self) -> str:
        """The signal process of single-signal work (the first of ``signals``)."""
        return self.signals[0]

    @property
    def label(self) -> str:
        """The injected signal's short name: the signal process (``xgg``), or ``gluon_pairs``."""
        return self.signal if self.kind != "gluon_pairs" else self.kind

    def only(self, signal: str) -> InjectionConfig:
        """This section with ``signal`` as its only signal process."""
        return self.model_copy(update={"signals": [signal]})


class ProcessingConfig(StrictModel):
    """How the coffea processors run (executors do not change the results)."""

    executor: Literal["iterative", "futures", "dask"] = "futures"
    workers: int | None = Field(None, ge=1, description="worker processes (null: all cores)")
    chunksize: int = Field(100_000, ge=1, description="events per coffea chunk")
    scheduler: str | None = Field(None, description="address of a running Dask scheduler (null: a LocalCluster)")
    skip_bad_files: bool = Field(False, description="skip unreadable input files (listed in cutflow.json)")


class ScanConfig(StrictModel):
    """Adjacent-bin PFN scan (`scan`); bins are histograms.analysis_bins, injection settings
    (mass, bin, pool_fraction) come from the injection section."""

    sizes: list[int] = Field([5000, 7000, 10000], min_length=1, description="events per random sample (reference: 50000, 70000, 100000)")
    n_samples: int = Field(5, ge=1, le=10_000, description="random samples per size (reference: 50)")
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(500, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    phi_sizes: list[int] = Field([100, 100, 128], min_length=1, description="per-particle network Phi")
    f_sizes: list[int] = Field([100, 100, 100], min_length=1, description="network F after the latent sum")
    phi_dtype: Literal["float32", "mixed_bfloat16", "auto"] = Field("float32", description="precision of Phi's hidden layers (auto: bfloat16 on CPUs that compute it natively)")
    backend: Literal["ours", "energyflow"] = Field("ours", description="packed Keras 3 PFN or energyflow.archs.PFN")
    particle_ids: Literal["pf_classes", "full"] = Field(
        "pf_classes", description="pf_classes: the CMS PF candidate classes (charged/neutral hadron, photon, e, mu); full: generator ids"
    )
    train_jets: int = Field(12000, ge=1, description="training jets per pair at reference_events")
    test_jets: int = Field(3000, ge=1, description="test jets per pair at reference_events")
    val_jets: int = Field(
        3000, ge=1, description="at most this many of the pair's other jets validate each epoch (at reference_events)"
    )
    reference_events: int = Field(50000, ge=1, description="sample size at which train_jets/test_jets apply")
    min_jets_per_bin: int = Field(600, ge=0, description="drop bins expecting fewer jets per sample (at reference_events)")
    validate_each_epoch: bool = Field(True, description="evaluate the validation jets after every epoch (as the reference); their loss is recorded")
    data_parallel: bool = Field(False, description="split each training over all devices instead of one training per device")

    @model_validator(mode="after")
    def _check(self) -> ScanConfig:
        if any(s < 2 for s in self.sizes) or any(s < 1 for s in [*self.phi_sizes, *self.f_sizes]):
            raise ValueError("sizes, phi_sizes and f_sizes must be positive")
        return self


class GenerationConfig(StrictModel):
    """Event generation (`generate`, and the samples `run` caches): Pythia8 + FastJet settings.

    The default pT-hat window was measured (pT-hat-biased Pythia, 16k events 150-1000 GeV):
    [290, 560] GeV holds ~99% of the events with exactly two tight jets of 350-450 GeV,
    |eta| < 1.9 (whose m_jj is 85% inside 660-1160 GeV); ~11.5% of the generated events pass.
    """

    sqrt_s: float = Field(7000.0, gt=0, description="centre-of-mass energy in GeV")
    pthat_min: float = Field(290.0, ge=0, description="qcd: lowest pT-hat of the 2->2 scattering (GeV)")
    pthat_max: float = Field(560.0, gt=0, description="qcd: highest pT-hat (GeV)")
    hadronisation: bool = Field(True, description="Pythia HadronLevel:all")
    mpi: bool = Field(True, description="multi-parton interactions (PartonLevel:MPI)")
    xgg_mass: float = Field(900.0, gt=0, description="xgg: resonance mass in GeV when --mass is not given")
    xgg_relative_width: float = Field(0.01, gt=0, le=0.3, description="xgg: width / mass of the RS graviton")
    wprime_mass: float = Field(900.0, gt=0, description="wprime: W' mass in GeV when --mass is not given")
    wprime_relative_width: float = Field(0.01, gt=0, le=0.3, description="wprime: width / mass of the W'")
    jet_radius: float = Field(0.5, gt=0, le=1.5, description="anti-kT R")
    jet_pt_min: float = Field(20.0, ge=1, description="jets stored above this pT (GeV)")
    particle_abs_eta_max: float = Field(5.0, gt=0, description="visible final-state particles clustered with |eta| < this")
    flavour_match_dr: float = Field(0.4, gt=0, description="Delta-R of a jet to a hard parton for Jet_partonFlavour")
    events_per_file: int = Field(5000, ge=1, description="events per ROOT file (the unit of parallel work and reuse)")
    batch_size: int = Field(500, ge=1, description="events clustered and written per batch")
    extra_pythia: list[str] = Field([], description="further Pythia settings ('Key = value'), e.g. a tune")
    data_dir: Path = Field(Path("data"), description="where `run` caches its generated samples (relative to the working directory)")
    qcd_events: int = Field(100_000, ge=1, description="qcd events `run` generates")
    xgg_events: int = Field(10_000, ge=1, description="xgg events `run` generates (at xgg_mass)")
    wprime_events: int = Field(10_000, ge=1, description="wprime events the chain generates (at wprime_mass)")

    @model_validator(mode="after")
    def _check(self) -> GenerationConfig:
        if not self.pthat_min < self.pthat_max < self.sqrt_s / 2:
            raise ValueError(f"need pthat_min < pthat_max < sqrt_s/2 (got {self.pthat_min}, {self.pthat_max}, {self.sqrt_s})")
        bad = [s for s in self.extra_pythia if "=" not in s]
        if bad:
            raise ValueError(f"extra_pythia entries must read 'Key = value' (got {bad[0]!r})")
        return self


class DatasetConfig(StrictModel):
    """p-value map datasets (`build-dataset`): toy counts, signal sizes and the map shape.

    A signal size is a number of signal events: the signal template (toy definition, or the
    xgg histogram) normalised to that integral and added to the background expectation.
    """

    toys: int = Field(1000, ge=10, le=200_000, description="background-only toys of the p-value reference (reference: 10000)")
    train: int = Field(2000, ge=10, le=500_000, description="background maps to train the autoencoders on (reference: 25000)")
    test: int = Field(1000, ge=10, le=200_000, description="test maps per array: backgrounds (the autoencoders' null losses, tail-fitted past them) and each toy signal size (reference: 5000 / 1000)")
    normalise: bool = Field(True, description="scale every processed spectrum to the background model's total before the CWT: the maps compare shapes, as the refitted histogram methods do")
    signal_sizes: list[float] = Field([0, 250, 500, 1000, 2000], min_length=1, max_length=50, description="signal events per toy spectrum (0: background only)")
    shape: list[int] = Field([48, 64], min_length=2, max_length=2, description="map shape (scales, mass blocks) after rebinning the 48x512 CWT")
    histogram_shape: list[int] = Field([48, 36], min_length=2, max_length=2, description="map shape for processed spectra (must divide scales x the bins of sensitivity.mjj_min..mjj_max)")

    @model_validator(mode="after")
    def _check(self) -> DatasetConfig:
        if any(not 0 <= s <= 1e12 for s in self.signal_sizes) or len(set(self.signal_sizes)) != len(self.signal_sizes):
            raise ValueError(f"signal_sizes must be distinct, finite and in [0, 1e12] (got {self.signal_sizes})")
        if min(self.shape + self.histogram_shape) < 1:
            raise ValueError("shape and histogram_shape must be positive")
        return self


class AutoencodersConfig(StrictModel):
    """Autoencoders on p-value maps (`train-ae`, `pvalue-scan`)."""

    models: list[str] = Field(["dense", "sparse_l1", "sparse_kl", "conv", "conv_l1", "conv_kl"], min_length=1)
    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1)
    patience: int = Field(3, ge=1, description="early stopping: epochs without a better validation loss")
    learning_rate: float = Field(1e-3, gt=0)
    code_size: int = Field(32, ge=1, description="dense bottleneck units (conv: channels of the 1x1 code layer / 2)")
    conv_filters: list[int] = Field([16, 32, 64], min_length=1, max_length=5, description="conv models' filters per level (reference: 32, 64, 128; as sensitive here at a quarter of the cost)")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="last share of the training maps used for validation")

    @model_validator(mode="after")
    def _models(self) -> AutoencodersConfig:
        known = ("dense", "sparse_l1", "sparse_kl", "conv", "conv_l1", "conv_kl")
        bad = [m for m in self.models if m.removesuffix("_ae") not in known]
        if bad:
            raise ValueError(f"unknown model {bad[0]!r} (known: {', '.join(known)})")
        return self


class BaselinesConfig(StrictModel):
    """Classical searches on the realisations' m_jj spectra (BumpHunter; background + Gaussian scan)."""

    n_pseudo: int = Field(5000, ge=10, le=1_000_000, description="background-only pseudo-experiments of BumpHunter's null distribution")
    fit_toys: int = Field(1000, ge=10, le=1_000_000, description="dijet_fit: the first min(n_pseudo, fit_toys) pseudo-experiments are its null (a mass scan costs ~30 ms)")
    turn_on: Literal["sample", "spectrum"] = Field(
        "sample", description="sample: the turn-on (a property of the jet-pT selection) from the background sample's fit; spectrum: refitted per spectrum"
    )
    width_min: int = Field(2, ge=1, description="narrowest BumpHunter window (bins)")
    width_max: int | None = Field(None, ge=1, description="widest window (bins; null: a quarter of the range)")
    fit_relative_width: float = Field(0.06, gt=0, lt=0.5, description="dijet_fit: Gaussian sigma / mass of a hypothesis (the m_jj resolution)")
    fit_mass_step: float = Field(20.0, gt=0, description="dijet_fit: spacing of the scanned mass hypotheses (GeV)")

    @model_validator(mode="after")
    def _range(self) -> BaselinesConfig:
        if self.width_max is not None and self.width_max < self.width_min:
            raise ValueError(f"width_max ({self.width_max}) must be at least width_min ({self.width_min})")
        return self


class SensitivityConfig(StrictModel):
    """The protocol every method is measured with: shared realisations, nested signal draws.

    A realisation holds every background event with a Poisson multiplicity whose rate makes each
    m_jj bin's expectation the smooth background model's (``model_poisson``), or rate 1
    (``poisson``, the plain Poisson bootstrap); the signal draw of size N is the first N events
    of a per-realisation permutation of the signal pool (nested in N).
    """

    realizations: int = Field(20, ge=2, le=100_000, description="background realisations of the analysis luminosity")
    resampling: Literal["model_poisson", "poisson"] = Field("model_poisson", description="per-event Poisson rates: from the background model, or 1")
    n_signal: list[int] = Field([0, 100, 300, 1000], min_length=2, description="injected signal events (must include 0)")
    mjj_min: float = Field(760.0, ge=0, description="lower edge of the spectrum the histogram methods search (GeV): above the selection turn-on")
    mjj_max: float = Field(1480.0, gt=0, description="upper edge (GeV)")
    tail_fraction: float = Field(0.05, gt=0, lt=0.5, description="share of the null toys whose tail is fitted (exponential)")
    max_extrapolation: float = Field(1000.0, ge=1, description="a tail-fitted p is trusted down to 1/(toys+1) divided by this")
    pfn_realizations: int = Field(6, ge=3, description="realisations the PFN methods train on (the first ones; trainings cost; >= 3 for a leave-one-out null)")
    pfn_test_fraction: float = Field(0.3, gt=0, lt=0.9, description="share of the events (not jets) a PFN is tested on")
    pfn_validation_fraction: float = Field(0.1, ge=0, lt=0.5, description="share of the events used for validation")

    @model_validator(mode="after")
    def _check(self) -> SensitivityConfig:
        exceeds("mjj_min", self.mjj_min, "mjj_max", self.mjj_max)
        if any(n < 0 for n in self.n_signal) or 0 not in self.n_signal or len(set(self.n_signal)) != len(self.n_signal):
            raise ValueError(f"n_signal must be distinct, non-negative and include 0 (got {self.n_signal})")
        if self.pfn_realizations > self.realizations:
            raise ValueError(f"pfn_realizations ({self.pfn_realizations}) exceeds realizations ({self.realizations})")
        if self.pfn_test_fraction + self.pfn_validation_fraction >= 0.9:
            raise ValueError("pfn_test_fraction + pfn_validation_fraction must leave at least 10 % for training")
        return self


class CwolaConfig(StrictModel):
    """CWoLa hunting (`cwola_pfn`): an event-level PFN trained on a signal-region window of m_jj
    against its two sidebands, k-fold by event, a cut on its score, a fit of the selected spectrum.
    Network and optimiser fields left null take the scan's."""

    sr_width: float = Field(100.0, gt=0, description="signal-region window width (GeV)")
    sb_width: float = Field(50.0, gt=0, description="width of each sideband (GeV)")
    sr_step: float = Field(50.0, gt=0, description="step of the sliding signal region (GeV)")
    sr_min: float = Field(810.0, ge=0, description="lowest lower edge of a signal region (GeV)")
    sr_max: float = Field(1010.0, gt=0, description="highest upper edge of a signal region (GeV)")
    folds: int = Field(5, ge=2, le=20, description="k of the k-fold training (folds by event)")
    efficiencies: list[float] = Field([0.1, 0.01, 0.002], min_length=1, description="selected share of the window's events, by score")
    realizations: int = Field(3, ge=1, description="realisations cwola_pfn runs on (the first ones; trainings cost)")
    phi_sizes: list[int] | None = Field([32, 32], description="event PFN's Phi (null: scan.phi_sizes)")
    f_sizes: list[int] | None = Field([32], description="event PFN's F (null: scan.f_sizes)")
    epochs: int | None = Field(4, ge=1, le=1000, description="null: scan.epochs")
    batch_size: int | None = Field(250, ge=2, description="null: scan.batch_size")
    learning_rate: float | None = Field(None, gt=0, description="null: scan.learning_rate")

    @model_validator(mode="after")
    def _check(self) -> CwolaConfig:
        if any(not 0 < e < 1 for e in self.efficiencies):
            raise ValueError(f"efficiencies must lie in (0, 1) (got {self.efficiencies})")
        if self.sr_max - self.sr_min < self.sr_width:
            raise ValueError(f"sr_min..sr_max ({self.sr_min:g}-{self.sr_max:g}) must hold one signal region of {self.sr_width:g} GeV")
        return self


STAGE_NAMES = ("toys", "generate", "process", "scan", "cwola", "autoencoders", "baselines", "report")


class AnalysisConfig(StrictModel):
    """The whole analysis: one seed drives every random choice."""

    seed: int = Field(1, ge=0, lt=2**32)
    output: Path = Field(Path("results/default"), description="results directory of `run`")
    stages: list[Literal[STAGE_NAMES]] = Field(  # type: ignore[valid-type]
        list(STAGE_NAMES), min_length=1, description="stages `run` runs, in this order"
    )
    toys: ToysConfig = ToysConfig()
    selection: SelectionConfig = SelectionConfig()
    histograms: HistogramsConfig = HistogramsConfig()
    injection: InjectionConfig = InjectionConfig()
    processing: ProcessingConfig = ProcessingConfig()
    scan: ScanConfig = ScanConfig()
    generation: GenerationConfig = GenerationConfig()
    dataset: DatasetConfig = DatasetConfig()
    autoencoders: AutoencodersConfig = AutoencodersConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    sensitivity: SensitivityConfig = SensitivityConfig()
    cwola: CwolaConfig = CwolaConfig()

    # The directory the config was read from; relative paths resolve against it.
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _sensitivity_range(self) -> AnalysisConfig:
        h, s = self.histograms, self.sensitivity
        if s.mjj_min < h.mjj_min or s.mjj_max > h.mjj_max or s.mjj_max - s.mjj_min < 10 * h.mjj_bin_width:
            raise ValueError(
                f"sensitivity.mjj_min/mjj_max ({s.mjj_min:g}, {s.mjj_max:g}) must span at least 10 histogram bins "
                f"inside the histograms' range ({h.mjj_min:g}-{h.mjj_max:g} GeV)"
            )
        return self

    def resolve(self, path: Path) -> Path:
        """Resolve a path from the config against the config file's directory."""
        return path if path.is_absolute() else self.base_dir / path

    def for_signal(self, signal: str) -> AnalysisConfig:
        """This config measuring ``signal`` only (``injection.signals = [signal]``)."""
        return self.model_copy(update={"injection": self.injection.only(signal)})

    def signal_configs(self) -> list[AnalysisConfig]:
        """One config per signal process of ``injection.signals``, in order (one for gluon pairs)."""
        if self.injection.kind != "resonance":
            return [self]
        return [self.for_signal(s) for s in self.injection.signals]

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON-able data (for run.json)."""
        return self.model_dump(mode="json")


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line naming the source, the key path and the problem of the first error."""
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"]) or "<top level>"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
    more = f" [+{len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{shown}{more}"


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file with the safe loader; errors name the file.

    The text must be UTF-8; a key repeated in one mapping is an error naming the key and both
    lines (PyYAML would silently keep the last one).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<" merge keys may repeat by design
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                    seen.setdefault(key, line)
                except TypeError:  # an unhashable key: PyYAML reports it itself
                    continue
                if first is not None:
                    raise ConfigError(f"{path}: line {line}: duplicate key {key!r} (first on line {first})")
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: plain data only, no objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path}:{where}: not valid YAML ({problem})") from None


def validate(model: type[M], data: Any, source: str, **context: Any) -> M:
    """Validate ``data`` against ``model``; a failure is a ConfigError naming source and key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate({**data, **context})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> AnalysisConfig:
    """Load and validate an analysis config (default: ``configs/default.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = _read_with_base(path, [])
    data = _merge(data, overrides or {})
    return validate(AnalysisConfig, data, str(path), base_dir=path.resolve().parent)


def _read_with_base(path: Path, seen: list[Path]) -> dict[str, Any]:
    """A config file's keys over those of the config it ``extends`` (a file beside it, by name)."""
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    if "base_dir" in data:
        raise ConfigError(f"{path}: base_dir: unknown key")
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or Path(base).name != base or not base.endswith((".yaml", ".yml")):
        raise ConfigError(f"{path}: extends: {base!r} must name a .yaml file in the same directory")
    base_path = path.resolve().parent / base
    if base_path in seen or base_path == path.resolve():
        raise ConfigError(f"{path}: extends: {base} extends itself")
    if not base_path.is_file():
        raise ConfigError(f"{path}: extends: {base_path} not found")
    return _merge(_read_with_base(base_path, [*seen, path.resolve()]), data)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge command-line overrides (nested dicts) into the config data."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
