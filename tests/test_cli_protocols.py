"""``rtqa protocols``: list, validate, show (through the real click group)."""

from click.testing import CliRunner

from rtqa.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_plain_protocols_lists_the_shipped_files():
    result = run("protocols")
    assert result.exit_code == 0, result.output
    assert "nrg_br002" in result.output and "NRG-BR002 (default)" in result.output
    assert "tg101" in result.output and "AAPM-TG-101" in result.output
    assert "sources: AAPM TG-101" in result.output


def test_validate_valid(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text('protocol: X\nversion: "1"\ntitle: t\ndescription: d\nsources: [Doc]\n')
    result = run("protocols", "validate", str(path))
    assert result.exit_code == 0
    assert result.output == f"valid: {path}: X 1, 0 organs, 0 sourced values\n"


def test_validate_invalid_exit_2_with_exact_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        'protocol: X\nversion: "1"\ntitle: t\ndescription: d\nsources: [Doc]\ncolour: red\n'
    )
    result = run("protocols", "validate", str(path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"rtqa: error: {path}:6 (key 'colour'): unknown key 'colour'; expected one of: "
        "protocol, version, title, description, sources, fractionation, targets, organs, "
        "plan_quality, plan_checks, prior_radiation, notes\n"
    )


def test_show_prints_limits_with_bands_source_and_confidence():
    result = run("protocols", "show", "NRG-BR002")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "NRG-BR002 2024.1: NRG-BR002 SBRT reconstruction" in out
    lines = [ln.split() for ln in out.splitlines()]
    assert ["3", "fx", "D0.03cc[Gy]", "limit", "<=", "21.9", "secondary", "[6]"] in lines
    assert any(ln[:3] == ["any", "V100%[%]", "per_protocol"] for ln in lines)
    assert "  [6] AAPM TG-101" in out
    assert "Plan quality (central_lung, peripheral_lung):" in out
    assert "Prior radiation: no policy (overlapping re-irradiation is not evaluable" in out
    boss = run("protocols", "show", "boss").output
    assert "Prior radiation (EQD2, Gy):" in boss and "no policy" not in boss


def test_show_unknown_protocol_is_a_usage_error():
    result = run("protocols", "show", "nope")
    assert result.exit_code == 2
    assert "unknown protocol 'nope'" in result.stderr
