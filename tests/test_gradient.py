"""The intermediate base of the gradient-trained imputers and its shared docs."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from numpydoc.docscrape import ClassDoc
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_mc import (
    AIRNetImputer,
    DeepMFImputer,
    DMFImputer,
    MLPImputer,
    SGDMFImputer,
)
from sklearn_mc._gradient import (
    GradientTrainedImputer,
    _format_default,
    fill_parameter_docs,
)

ADOPTED = [SGDMFImputer, MLPImputer, DeepMFImputer, DMFImputer]
#: the classes whose docstrings are filled from the shared template (AIR-Net
#: widens early_stopping, so it is not in ADOPTED's bounds test)
TEMPLATED = [*ADOPTED, AIRNetImputer]
SHARED = GradientTrainedImputer._parameter_constraints


@pytest.mark.parametrize("cls", TEMPLATED, ids=lambda c: c.__name__)
def test_docstring_documents_every_parameter_once_with_its_real_default(cls):
    documented = ClassDoc(cls, config={"show_class_members": False})["Parameters"]
    names = [p.name for p in documented]
    signature = inspect.signature(cls.__init__).parameters
    assert sorted(names) == sorted(n for n in signature if n != "self")
    assert len(names) == len(set(names))
    for param in documented:
        assert param.desc, f"{cls.__name__}.{param.name} has no description"
        written = eval(param.type.rsplit("default=", 1)[1], {"np": np})
        default = signature[param.name].default
        assert _format_default(written) == _format_default(default), param.name
    assert "{" + "learning_rate}" not in cls.__doc__  # every placeholder filled


@pytest.mark.parametrize("cls", ADOPTED, ids=lambda c: c.__name__)
def test_shared_parameters_have_one_set_of_bounds(cls):
    assert issubclass(cls, GradientTrainedImputer)
    for name, constraint in SHARED.items():
        assert cls._parameter_constraints[name] is constraint, name


@pytest.mark.parametrize("cls", TEMPLATED, ids=lambda c: c.__name__)
def test_shared_entries_read_the_same_in_every_class(cls):
    # The shared text comes from one template: the first sentence of
    # ``validation_fraction`` and ``learning_rate`` is the same everywhere.
    doc = {p.name: " ".join(p.desc) for p in ClassDoc(cls)["Parameters"]}
    reference = {p.name: " ".join(p.desc) for p in ClassDoc(MLPImputer)["Parameters"]}
    for name in (
        "validation_fraction",
        "missing_values",
        "device",
        "keep_empty_features",
    ):
        assert doc[name] == reference[name]
    assert doc["learning_rate"].startswith(reference["learning_rate"][:60])


def test_air_net_shares_the_bounds_and_widens_early_stopping():
    # AIR-Net's bounds are the shared ones; only early_stopping adds "auto"
    # (so its docstring writes that entry itself).
    assert issubclass(AIRNetImputer, GradientTrainedImputer)
    own = AIRNetImputer._parameter_constraints
    for name, constraint in SHARED.items():
        if name != "early_stopping":
            assert own[name] is constraint, name
    assert own["early_stopping"][: len(SHARED["early_stopping"])] == list(
        SHARED["early_stopping"]
    )
    with pytest.raises(InvalidParameterError, match="validation_fraction"):
        AIRNetImputer(validation_fraction=0.0).fit(np.array([[1.0, np.nan]] * 2))


def test_validation_fraction_bounds_agree_across_methods():
    # DeepMF accepted validation_fraction=0 while the others rejected it.
    X = np.array([[1.0, np.nan], [2.0, 3.0]])
    for cls in ADOPTED:
        with pytest.raises(InvalidParameterError, match="validation_fraction"):
            cls(validation_fraction=0.0).fit(X)


def test_unknown_placeholder_fails_at_class_creation():
    class Imputer(GradientTrainedImputer):
        """Doc.

        Parameters
        ----------
        {no_such_parameter}
        """

    with pytest.raises(KeyError, match="no_such_parameter"):
        fill_parameter_docs(Imputer)


def test_class_additions_follow_the_shared_entry():
    doc = {p.name: " ".join(p.desc) for p in ClassDoc(MLPImputer)["Parameters"]}
    assert doc["random_state"].endswith("The masks are drawn from it too.")


def test_sgd_path_plateau_judges_only_after_the_path():
    # alpha_decay=0.8: the path has covered 99.9 % of its way after 31 epochs.
    # With a tolerance no epoch can meet and a patience of one check, the
    # plateau rule stops the fit at its first or second check after the path
    # (the first check of the loop's rule counts as one without progress),
    # never on the path.
    rng = np.random.RandomState(0)
    X = rng.randn(12, 3) @ rng.randn(3, 8)
    X[rng.rand(*X.shape) < 0.3] = np.nan
    est = SGDMFImputer(
        rank=3,
        alpha_decay=0.8,
        early_stopping=False,
        tol=0.5,
        n_iter_no_change=1,
        max_iter=200,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged: no ConvergenceWarning
        est.fit(X)
    assert est.stop_reason_ == "converged"
    assert 31 <= est.n_iter_ <= 32
