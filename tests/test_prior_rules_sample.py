"""Prior-radiation rules on the sample cases spine_prior and spine_prior_exceeds (BOSS).

Intended numbers (sample_data/README.md, closed form): cord D0.03cc EQD2 (alpha/beta 2) current
19.39 Gy, prior 30.00 Gy (20 Gy/5) or 60.00 Gy (24 Gy/3), cumulative 49.39 / 79.39 Gy.
Tolerances: the prior dose is a 20 (24) Gy plateau over the whole cord hot spot, so the prior
figure is exact to interpolation round-off (0.01 Gy). The current dose is read from its 2.5 mm
RT Dose grid by trilinear interpolation; in the steep SBRT gradient at the cord the grid reads
D0.03cc 12.72 Gy physical against 12.55 Gy analytic (the organ DVH of the check shows the same),
i.e. about +0.5 Gy EQD2: the current and cumulative figures are held to 0.6 Gy.
"""

import pytest

from rtqa.check import CheckOptions, run_check
from rtqa.model import Status
from rtqa.protocol.dose_sanity import dose_placement
from rtqa.protocol.metrics import evaluate, parse_metric
from rtqa.radiobiology import eqd2

D003 = parse_metric("D0.03cc[Gy]")


@pytest.fixture(scope="module")
def results():
    out = {}
    for name in ("spine_prior", "spine_prior_exceeds"):
        (r,) = run_check([f"sample_data/{name}"], CheckOptions(protocol="boss", keep_context=True))
        out[name] = r
    return out


@pytest.mark.parametrize(
    ("name", "prior", "exit_code"), [("spine_prior", 30.0, 0), ("spine_prior_exceeds", 60.0, 1)]
)
def test_cord_eqd2_matches_the_closed_form(results, name, prior, exit_code):
    r = results[name]
    cord = r.context.prior.organ_dvhs["SpinalCord"]
    now, before, cum = (evaluate(D003, d) for d in (cord.current, cord.prior, cord.cumulative))
    assert before == pytest.approx(prior, abs=0.01)
    assert now == pytest.approx(19.39, abs=0.6)
    assert cum == pytest.approx(19.39 + prior, abs=0.6)
    # the hot spot lies in the prior plateau (flat to 0.01 Gy)
    assert cum == pytest.approx(now + before, abs=0.01)
    assert cord.unknown_prior_cc == 0.0
    # the same sampling as the organ DVH of the check: EQD2 is monotone, so D0.03cc commutes
    physical = r.context.dvhs["SpinalCord"].dvh.dose_at_volume_cc(0.03)
    assert now == pytest.approx(eqd2(physical, 3, 2.0), abs=0.05)
    assert r.exit_code == exit_code


def test_findings_of_both_variants(results):
    ok = [f for f in results["spine_prior"].findings if f.group == "prior"]
    bad = [f for f in results["spine_prior_exceeds"].findings if f.group == "prior"]
    (cum_ok,) = [f for f in ok if f.rule == "cumulative_eqd2" and f.roi == "SpinalCord"]
    (cum_bad,) = [f for f in bad if f.rule == "cumulative_eqd2" and f.roi == "SpinalCord"]
    assert cum_ok.status is Status.PASS and cum_bad.status is Status.MAJOR
    assert cum_bad.value - cum_ok.value == pytest.approx(30.0, abs=0.01)  # 60 - 30 Gy prior
    (interval,) = [f for f in ok if f.rule == "min_interval"]
    # README: 360 days, 11 calendar months and 23 days of a 29-day month
    assert "360 days" in interval.message and interval.value == pytest.approx(11 + 23 / 29)
    assert interval.status is Status.PASS
    (direction,) = [f for f in ok if f.rule == "registration_direction"]
    assert direction.value > 0.99 and direction.status is Status.INFO
    assert any(f.rule == "reirradiation_type" and "type 1" in f.message for f in ok)


@pytest.mark.parametrize("name", ["spine_prior", "spine_prior_exceeds"])
def test_each_prior_dose_lies_in_its_own_body(results, name):
    """The prior dose against the body outline of its own structure set, in frame B: the box
    field's 50 % isodose (1439.7 cc closed-form, a 0.25 mm lattice over the erf profiles) lies
    wholly inside the body (which reaches beyond the prior dose grid)."""
    r = results[name]
    (f,) = [f for f in r.findings if f.rule == "prior_dose_placement"]
    assert f.group == "prior" and f.case_id == "PRIOR_T7" and f.roi == "Body"
    assert f.status is Status.PASS and f.value == pytest.approx(0.0, abs=1e-9)
    assert f"{name}/RD.PRIOR_T7.dcm" in f.message and f"{name}/RS.PRIOR_T7.dcm" in f.message
    (prior,) = r.context.prior.priors
    body = prior.case.structure_set.roi("Body")
    p = dose_placement(prior.case.dose, body)
    assert p.high_cc == pytest.approx(1439.7, rel=0.005)
    assert p.outside_cc == 0.0 and p.max_in_body
