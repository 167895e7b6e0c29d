"""Megatron-LM's golden-value comparator, run in process as a test oracle.

The reference files (``tests/functional_tests/python_test_utils`` of Megatron-LM) are imported
from ``shared/megatron_reference`` at run time and their pytest test functions are called
directly, with their conftest fixtures resolved against a stand-in for pytest's ``request``.
Each call writes the golden, actual and model_config files the fixtures read into one private
temporary folder, so a verdict is what ``pytest`` would report for the same files. A model_config
given as a mapping is written holding only its ``METRICS`` entry, the one key the comparators
read; give the file's text to have it written whole.

Where the reference is looked up: the ``reference_root`` argument, else the environment variable
``CI_GOLDEN_MEGATRON_REFERENCE``, else the first ``shared/megatron_reference`` found beside this
file or one of its parent folders.

Calls are serialised by a lock: the oracle swaps module globals and an environment variable
for the duration of a call. Where tensorboard is not installed, ``common.py`` is imported with a
stand-in for its event-file reader, which the comparators never call.

Entry points: ``MegatronOracle`` (one temporary folder per instance), or the module functions
``pretraining_verdict``, ``resume_verdict`` and ``inference_verdict``, which share one oracle.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import inspect
import io
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ENV_VAR = "CI_GOLDEN_MEGATRON_REFERENCE"
PACKAGE = "tests.functional_tests.python_test_utils"
NONDETERMINISTIC_FLAG = "--allow-nondeterministic-algo"
_TENSORBOARD_STUB = (
    "tensorboard",
    "tensorboard.backend",
    "tensorboard.backend.event_processing",
    "tensorboard.backend.event_processing.event_accumulator",
)

Payload = Mapping[str, Any] | str
"""A file's content: a JSON-able mapping, or the exact text of the file."""

_LOCK = threading.RLock()


@dataclass(frozen=True)
class Verdict:
    """What Megatron-LM's comparator says about one pair.

    passed: the pytest run the CI script makes for this pair would succeed (a skip counts).
    exact_failed: the deterministic (exact) checks fail for this pair, whether or not the CI would
        run them; structural failures (missing metric, unreadable file) count as failing too.
        For inference, which has no separate exact check, it is ``not passed``.
    approx_passed: the run with ``--allow-nondeterministic-algo`` (exact checks skipped) succeeds.
    message: the failure's exception and the comparator's error log lines, empty on success.
    """

    passed: bool
    exact_failed: bool
    approx_passed: bool
    message: str = ""

    @property
    def drift(self) -> bool:
        return self.exact_failed and self.approx_passed


def find_reference_root(start: Path | None = None) -> Path:
    """The Megatron reference folder: ``$CI_GOLDEN_MEGATRON_REFERENCE`` or a ``shared/`` above."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).resolve()
    here = (start or Path(__file__)).resolve()
    for folder in here.parents:
        candidate = folder / "shared" / "megatron_reference"
        if (candidate / "tests" / "functional_tests" / "python_test_utils").is_dir():
            return candidate
    raise FileNotFoundError(
        f"no shared/megatron_reference above {here}; set {ENV_VAR} to the reference folder"
    )


def _yq_text(value: Any) -> str:
    """How ``yq`` prints a scalar that PyYAML loaded as ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ci_allows_nondeterminism(model_config: Mapping[str, Any]) -> bool:
    """Whether run_ci_test.sh passes ``--allow-nondeterministic-algo`` for this model_config.

    The script reads both variables from the params file's ENV_VARS only (the process
    environment is overwritten) and compares yq's text output with the string "1".
    """
    env = model_config.get("ENV_VARS")
    env = env if isinstance(env, Mapping) else {}
    nvte = _yq_text(env.get("NVTE_ALLOW_NONDETERMINISTIC_ALGO"))
    non_det = env.get("NON_DETERMINSTIC_RESULTS")
    non_det_text = _yq_text("0" if non_det in (None, False) else non_det)
    return nvte == "1" or non_det_text == "1"


def ci_train_iters(model_config: Mapping[str, Any]) -> int:
    """The TRAIN_ITERS run_ci_test.sh passes to the comparators (non-lightweight, non-NeMo)."""
    args = model_config.get("MODEL_ARGS")
    args = args if isinstance(args, Mapping) else {}
    key = "--exit-interval" if model_config.get("TEST_TYPE") == "release" else "--train-iters"
    value = args.get(key)
    return int(value) if value is not None else 100


@dataclass(frozen=True)
class _Reference:
    conftest: Any
    common: Any
    regular: Any
    resume: Any
    inference: Any


@contextlib.contextmanager
def _tensorboard_stub() -> Iterator[None]:
    """Lets ``common.py`` import where tensorboard is absent; only its event reader needs it."""
    if importlib.util.find_spec("tensorboard") is not None:
        yield
        return
    saved = {name: sys.modules.get(name) for name in _TENSORBOARD_STUB}
    for name in _TENSORBOARD_STUB:
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
    accumulator = sys.modules[_TENSORBOARD_STUB[-1]]
    accumulator.TENSORS = "tensors"  # type: ignore[attr-defined]
    accumulator.SCALARS = "scalars"  # type: ignore[attr-defined]

    def event_accumulator(*_: Any, **__: Any) -> Any:
        raise ImportError("reading TensorBoard event files needs the tensorboard package")

    accumulator.EventAccumulator = event_accumulator  # type: ignore[attr-defined]
    for parent, child in itertools.pairwise(_TENSORBOARD_STUB):
        setattr(sys.modules[parent], child.rsplit(".", 1)[1], sys.modules[child])
    try:
        yield
    finally:
        _restore_modules(saved)


def _restore_modules(saved: Mapping[str, types.ModuleType | None]) -> None:
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


_REFERENCES: dict[Path, _Reference] = {}


def load_reference(root: Path) -> _Reference:
    """Imports the reference modules under their own package name, leaving sys.modules as it was."""
    root = root.resolve()
    with _LOCK:
        if root in _REFERENCES:
            return _REFERENCES[root]
        package_dir = root / "tests" / "functional_tests" / "python_test_utils"
        if not (package_dir / "common.py").is_file():
            raise FileNotFoundError(f"{package_dir / 'common.py'} not found")
        names = (
            "conftest",
            "common",
            "test_pretraining_regular_pipeline",
            "test_pretraining_resume_checkpoint_pipeline",
            "test_inference_regular_pipeline",
        )
        packages = {
            "tests": root / "tests",
            "tests.functional_tests": root / "tests" / "functional_tests",
            PACKAGE: package_dir,
        }
        touched = [*packages, *(f"{PACKAGE}.{name}" for name in names)]
        saved = {name: sys.modules.get(name) for name in touched}
        root_logger = logging.getLogger()
        saved_handlers, saved_level = list(root_logger.handlers), root_logger.level
        try:
            for name, path in packages.items():
                package = types.ModuleType(name)
                package.__path__ = [str(path)]
                sys.modules[name] = package
            with _tensorboard_stub():
                modules = [importlib.import_module(f"{PACKAGE}.{name}") for name in names]
        finally:
            _restore_modules(saved)
            root_logger.handlers[:] = saved_handlers
            root_logger.setLevel(saved_level)
        reference = _Reference(*modules)
        _REFERENCES[root] = reference
        return reference


class _Options:
    """pytest's ``request`` as the reference's fixtures use it: ``request.config.getoption``."""

    def __init__(self, specs: Mapping[str, Mapping[str, Any]], given: Mapping[str, Any]) -> None:
        self.config = self
        self._specs = specs
        self._given = given

    def getoption(self, name: str) -> Any:
        spec = self._specs[name]
        if name not in self._given:
            return spec.get("default")
        if spec.get("action") == "store_true":
            return True
        convert = spec.get("type")
        value = self._given[name]
        return convert(value) if convert is not None else value


class _OptionRecorder:
    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}

    def addoption(self, *names: str, **spec: Any) -> None:
        for name in names:
            self.specs[name] = spec


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class MegatronOracle:
    """Runs Megatron-LM's pytest comparators in process on in-memory golden/actual pairs."""

    def __init__(self, reference_root: Path | str | None = None) -> None:
        root = Path(reference_root) if reference_root is not None else find_reference_root()
        self.reference_root = root.resolve()
        self._ref = load_reference(self.reference_root)
        recorder = _OptionRecorder()
        self._ref.conftest.pytest_addoption(recorder)
        self._option_specs = recorder.specs
        self._folder = Path(tempfile.mkdtemp(prefix="megatron_oracle_", dir=_fast_temp_root()))
        self._written: dict[Path, str] = {}
        self._signatures: dict[Callable[..., Any], tuple[str, ...]] = {}

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> MegatronOracle:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def pretraining(
        self,
        golden: Payload,
        actual: Payload,
        model_config: Payload,
        *,
        nondeterministic: bool | None = None,
        train_iters: int | None = None,
    ) -> Verdict:
        """test_pretraining_regular_pipeline.py on a golden file and an actual-values file."""
        with _LOCK:
            options = {
                "--golden-values-path": self._write("golden.json", golden),
                "--actual-values-path": self._write("actual.json", actual),
            }
            return self._training(
                self._ref.regular.test_regular_pipeline,
                options,
                model_config,
                nondeterministic,
                train_iters,
            )

    def resume(
        self,
        first_run: Payload,
        second_run: Payload,
        model_config: Payload,
        *,
        nondeterministic: bool | None = None,
        train_iters: int | None = None,
    ) -> Verdict:
        """test_pretraining_resume_checkpoint_pipeline.py on the two phases of a resumed run."""
        with _LOCK:
            options = {
                "--actual-values-first-run-path": self._write("first_run.json", first_run),
                "--actual-values-second-run-path": self._write("second_run.json", second_run),
            }
            return self._training(
                self._ref.resume.test_resume_checkpoint_pipeline,
                options,
                model_config,
                nondeterministic,
                train_iters,
            )

    def inference(
        self,
        golden: Payload,
        actual: Payload,
        model_config: Payload,
        *,
        nondeterministic: bool | None = None,
        lightweight: bool = False,
    ) -> Verdict:
        """test_inference_regular_pipeline.py; ``nondeterministic`` is passed on, and ignored."""
        config = self._config(model_config)
        with _LOCK:
            options: dict[str, Any] = {
                "--golden-values-path": self._write("golden.json", golden),
                "--test-values-path": self._write("actual.json", actual),
                "--model-config-path": self._write("model_config.yaml", model_config),
            }
            if self._nondeterministic(config, nondeterministic):
                options[NONDETERMINISTIC_FLAG] = True
            with _environ("ENABLE_LIGHTWEIGHT_MODE", "true" if lightweight else "false"):
                passed, message = self._run(self._ref.inference.test_inference_pipeline, options)
        return Verdict(
            passed=passed, exact_failed=not passed, approx_passed=passed, message=message
        )

    def _training(
        self,
        test: Callable[..., Any],
        options: dict[str, Any],
        model_config: Payload,
        nondeterministic: bool | None,
        train_iters: int | None,
    ) -> Verdict:
        config = self._config(model_config)
        options["--model-config-path"] = self._write("model_config.yaml", model_config)
        iters = train_iters if train_iters is not None else ci_train_iters(config)
        options["--train-iters"] = str(iters)
        approximate = {**options, NONDETERMINISTIC_FLAG: True}
        if self._nondeterministic(config, nondeterministic):
            passed, message = self._run(test, approximate)
            approx_passed = passed
        else:
            passed, message = self._run(test, options)
            approx_passed, _ = self._run(test, approximate)
        with self._deterministic_checks_only():
            exact_passed, _ = self._run(test, options)
        return Verdict(
            passed=passed,
            exact_failed=not exact_passed,
            approx_passed=approx_passed,
            message=message,
        )

    @staticmethod
    def _nondeterministic(config: Mapping[str, Any], given: bool | None) -> bool:
        return ci_allows_nondeterminism(config) if given is None else given

    @staticmethod
    def _config(model_config: Payload) -> Mapping[str, Any]:
        if isinstance(model_config, str):
            try:
                loaded = yaml.safe_load(model_config)
            except yaml.YAMLError:
                return {}
            return loaded if isinstance(loaded, Mapping) else {}
        return model_config

    def _write(self, name: str, content: Payload) -> str:
        path = self._folder / name
        if isinstance(content, str):
            text = content
        elif name.endswith(".yaml"):
            metrics = {"METRICS": content["METRICS"]} if "METRICS" in content else {}
            text = json.dumps(metrics)
        else:
            text = json.dumps(content)
        if self._written.get(path) != text:
            path.write_text(text)
            self._written[path] = text
        return str(path)

    @contextlib.contextmanager
    def _deterministic_checks_only(self) -> Iterator[None]:
        regular = self._ref.regular
        common = self._ref.common
        original = regular.CHECK_THRESHOLDS
        deterministic = common.TypeOfTestResult.DETERMINISTIC
        regular.CHECK_THRESHOLDS = {
            metric: common._filter_checks(checks, deterministic)
            for metric, checks in original.items()
        }
        try:
            yield
        finally:
            regular.CHECK_THRESHOLDS = original

    def _required_parameters(self, function: Callable[..., Any]) -> tuple[str, ...]:
        if function not in self._signatures:
            self._signatures[function] = tuple(
                name
                for name, parameter in inspect.signature(function).parameters.items()
                if parameter.default is inspect.Parameter.empty
            )
        return self._signatures[function]

    def _fixture(self, name: str, request: _Options, resolved: dict[str, Any]) -> Any:
        if name == "request":
            return request
        if name not in resolved:
            function = inspect.unwrap(getattr(self._ref.conftest, name))
            parameters = self._required_parameters(function)
            resolved[name] = function(
                **{p: self._fixture(p, request, resolved) for p in parameters}
            )
        return resolved[name]

    def _run(self, test: Callable[..., Any], options: Mapping[str, Any]) -> tuple[bool, str]:
        """Calls one test function as pytest would; returns (passed, message)."""
        request = _Options(self._option_specs, options)
        parameters = self._required_parameters(test)
        with _captured_logs() as logs, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stage = "fixture"
            try:
                resolved: dict[str, Any] = {}
                kwargs = {name: self._fixture(name, request, resolved) for name in parameters}
                stage = "test"
                test(**kwargs)
            except pytest.skip.Exception as skipped:
                return True, f"skipped: {skipped}"
            except (Exception, pytest.fail.Exception) as error:
                detail = "; ".join(logs.lines)
                text = f"{stage} {type(error).__name__}: {error}".strip()
                return False, f"{text} [{detail}]" if detail else text
        return True, ""


def _fast_temp_root() -> str | None:
    """A memory-backed folder where there is one: the reference re-reads its files on every call."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextlib.contextmanager
def _captured_logs() -> Iterator[_LogCapture]:
    logger = logging.getLogger(PACKAGE)
    capture = _LogCapture()
    saved = logger.level, logger.propagate
    logger.addHandler(capture)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            yield capture
        finally:
            logger.removeHandler(capture)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


_DEFAULT: MegatronOracle | None = None


def default_oracle() -> MegatronOracle:
    """One shared oracle on the reference ``find_reference_root`` finds; removed at exit."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = MegatronOracle()
            atexit.register(_DEFAULT.close)
        return _DEFAULT


def pretraining_verdict(
    golden: Payload,
    actual: Payload,
    model_config: Payload,
    *,
    nondeterministic: bool | None = None,
    train_iters: int | None = None,
) -> Verdict:
    return default_oracle().pretraining(
        golden, actual, model_config, nondeterministic=nondeterministic, train_iters=train_iters
    )


def resume_verdict(
    first_run: Payload,
    second_run: Payload,
    model_config: Payload,
    *,
    nondeterministic: bool | None = None,
    train_iters: int | None = None,
) -> Verdict:
    return default_oracle().resume(
        first_run,
        second_run,
        model_config,
        nondeterministic=nondeterministic,
        train_iters=train_iters,
    )


def inference_verdict(
    golden: Payload,
    actual: Payload,
    model_config: Payload,
    *,
    nondeterministic: bool | None = None,
    lightweight: bool = False,
) -> Verdict:
    return default_oracle().inference(
        golden, actual, model_config, nondeterministic=nondeterministic, lightweight=lightweight
    )
