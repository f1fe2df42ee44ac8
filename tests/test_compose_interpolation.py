"""Interpolation of holos.yaml values, row by row against compose's reference behaviour
(compose-go template/template_test.go, compose-spec 12-interpolation.md)."""

from __future__ import annotations

import dataclasses
import json

from holosc.errors import HolosError
from holosc.load.parse import load_text
from tests.compose_ref import Err, params

# As the upstream tests' mapping: one variable set, one set and empty.
ENV = {"FOO": "first", "BAR": ""}


@dataclasses.dataclass(frozen=True)
class Row:
    source: str
    template: str
    expected: str | Err
    env: dict[str, str] = dataclasses.field(default_factory=lambda: dict(ENV))
    warns: str | None = None  # a variable the unset-variable warning names


T = "template_test.go "
SPEC = "12-interpolation.md"
INVALID = Err("invalid interpolation format")


def missing(name: str, reason: str = "") -> Err:
    return Err(f"required variable {name} is missing a value{reason}")


ROWS = [
    # Escapes and text that is no variable.
    Row(T + "TestEscaped", "$${gone}", "${gone}"),
    Row(T + "TestEscaped", "pay $$5", "pay $5"),
    Row(T + "TestEscaped", "$$$FOO", "$first"),
    Row(T + "TestEscaped", "$$$$", "$$"),
    Row(SPEC + " $$", "$$VAR_NOT_INTERPOLATED_BY_COMPOSE", "$VAR_NOT_INTERPOLATED_BY_COMPOSE"),
    Row(T + "TestSubstituteNoMatch", "plain", "plain"),
    Row(T + "TestUnescaped", "a $ in text", "a $ in text"),
    Row(T + "TestUnescaped", "^ANCHORED$", "^ANCHORED$"),
    Row(T + "TestUnescaped", "$}", "$}"),
    Row(T + "TestUnescaped", "$", "$"),
    Row(SPEC + " preserved", "costs $5 now", "costs $5 now"),
    Row(SPEC + " preserved", "$-dash", "$-dash"),
    Row(SPEC + " preserved", "a$ $b", "a$ "),
    # Invalid braced forms.
    Row(T + "TestInvalid", "${", INVALID),
    Row(T + "TestInvalid", "${}", INVALID),
    Row(T + "TestInvalid", "${ }", INVALID),
    Row(T + "TestInvalid", "${ FOO}", INVALID),
    Row(T + "TestInvalid", "${FOO }", INVALID),
    Row(T + "TestInvalid", "${FOO!}", INVALID),
    Row(T + "TestInvalid", "x ${FOO", INVALID),
    Row(T + "TestInvalid", "${1FOO}", INVALID),
    Row(T + "TestInvalid", "${FOO:x}", INVALID),
    Row(SPEC + " no ${VAR/a/b}", "${FOO/f/g}", INVALID),
    # Names.
    Row(T + "TestNonBraced", "$FOO-tail", "first-tail"),
    Row(T + "TestNonBraced", "$FOO.tail", "first.tail"),
    Row(T + "TestNonBraced", "$FOO$FOO", "firstfirst"),
    Row(T + "TestNonBraced", "${FOO}${FOO}", "firstfirst"),
    Row(SPEC + " names", "$FOO_tail", ""),
    Row(SPEC + " names", "${_U}x", "x", env={}),
    Row(SPEC + " names", "$lower", "low", env={"lower": "low"}),
    Row(SPEC + " names", "${Mixed_9}", "m", env={"Mixed_9": "m"}),
    Row(T + "TestNoValueNoDefault", "A ${missing} B", "A  B", warns="missing"),
    Row(T + "TestNoValueNoDefault", "A ${BAR} B", "A  B"),
    Row(T + "TestNoValueNoDefault", "A $missing B", "A  B", warns="missing"),
    Row(T + "TestValueNoDefault", "A $FOO B", "A first B"),
    Row(T + "TestValueNoDefault", "A ${FOO} B", "A first B"),
    # Defaults.
    Row(T + "TestNoValueWithDefault", "ok ${missing:-dflt}", "ok dflt"),
    Row(T + "TestNoValueWithDefault", "ok ${missing-dflt}", "ok dflt"),
    Row(T + "TestEmptyValueWithSoftDefault", "ok ${BAR:-dflt}", "ok dflt"),
    Row(T + "TestValueWithSoftDefault", "ok ${FOO:-dflt}", "ok first"),
    Row(T + "TestEmptyValueWithHardDefault", "ok ${BAR-dflt}", "ok "),
    Row(T + "TestValueWithSoftDefault", "ok ${FOO-dflt}", "ok first"),
    Row(T + "TestNonAlphanumericDefault", "${BAR:-/a/path:-x}", "/a/path:-x"),
    Row(T + "TestNonAlphanumericDefault", "${missing:-a b=c,d}", "a b=c,d"),
    Row(T + "TestNonAlphanumericDefault", "${missing-}", ""),
    Row(T + "TestNonAlphanumericDefault", "${missing:-}", ""),
    # Alternatives.
    Row(T + "TestPresentValueWithUnset", "ok ${UNSET_VAR:+alt}", "ok "),
    Row(T + "TestPresentValueWithUnset2", "ok ${UNSET_VAR+alt}", "ok "),
    Row(T + "TestPresentValueWithNonEmpty", "ok ${FOO:+alt}", "ok alt"),
    Row(T + "TestPresentValueAndNonEmptyWithNonEmpty", "ok ${FOO+alt}", "ok alt"),
    Row(T + "TestPresentValueWithSet", "ok ${BAR+alt}", "ok alt"),
    Row(T + "TestPresentValueAndNotEmptyWithSet", "ok ${BAR:+alt}", "ok "),
    # Operators inside the text around a variable change nothing.
    Row(T + "TestInterpolationExternalInterference", "-ok ${BAR:-dv}", "-ok dv"),
    Row(T + "TestInterpolationExternalInterference", "+ok ${UNSET:-${BAR-dv}}", "+ok "),
    Row(T + "TestInterpolationExternalInterference", "-ok ${FOO:-dv}", "-ok first"),
    Row(T + "TestInterpolationExternalInterference", ":-ok ${UNSET-dv}", ":-ok dv"),
    Row(T + "TestInterpolationExternalInterference", ":-ok ${BAR-dv}", ":-ok "),
    Row(T + "TestInterpolationExternalInterference", ":?ok ${BAR-dv}", ":?ok "),
    Row(T + "TestInterpolationExternalInterference", ":?ok ${BAR:-dv}", ":?ok dv"),
    Row(T + "TestInterpolationExternalInterference", ":+ok ${BAR:-dv}", ":+ok dv"),
    Row(T + "TestInterpolationExternalInterference", "+ok ${BAR-dv}", "+ok "),
    Row(T + "TestInterpolationExternalInterference", "?ok ${BAR:-dv}", "?ok dv"),
    # Nesting.
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${UNSET_VAR-$FOO}", "ok first"),
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${UNSET_VAR-${FOO}}", "ok first"),
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${BAR:-$FOO}", "ok first"),
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${BAR:-${FOO}}", "ok first"),
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${BAR+$FOO}", "ok first"),
    Row(T + "TestDefaultsWithNestedExpansion", "ok ${BAR+$FOO ${FOO:+2nd}}", "ok first 2nd"),
    Row(SPEC + " nested", "${VARIABLE:-${FOO}}", "first"),
    Row(SPEC + " nested", "${VARIABLE:-${FOO:-default}}", "first"),
    Row(SPEC + " nested", "${VARIABLE:-${UNSET:-default}}", "default"),
    Row(SPEC + " nested", "${VARIABLE?$FOO}", missing("VARIABLE", ": first")),
    Row(SPEC + " nested", "${A:-${B:-${C:-${FOO}}}}", "first"),
    Row(SPEC + " nested", "${A:-x}${B:-y}", "xy"),
    Row(SPEC + " nested", "${A:-${B}", INVALID),
    # Braces in defaults run to the balanced `}` (issue 25's `${JSON:-{"json":1}}`).
    Row(T + "getFirstBraceClosingIndex", '${JSON:-{"json":1}}', '{"json":1}'),
    Row(T + "getFirstBraceClosingIndex", '${JSON:-{"a":{"b":2}}} end', '{"a":{"b":2}} end'),
    Row(T + "getFirstBraceClosingIndex", "${U:-{}}", "{}"),
    Row(T + "getFirstBraceClosingIndex", "${U:-a}b}", "ab}"),
    Row(T + "getFirstBraceClosingIndex", "${FOO:-{x}}", "first"),
    Row(T + "getFirstBraceClosingIndex", "${U:-$}", "$"),
    # Required variables.
    Row(T + "TestMandatoryVariableErrors", "no ${UNSET_VAR:?must}", missing("UNSET_VAR", ": must")),
    Row(T + "TestMandatoryVariableErrors", "no ${BAR:?is empty}", missing("BAR", ": is empty")),
    Row(T + "TestMandatoryVariableErrors", "no ${UNSET_VAR:?}", missing("UNSET_VAR")),
    Row(T + "TestMandatoryVariableErrors", "no ${UNSET_VAR?must}", missing("UNSET_VAR", ": must")),
    Row(T + "TestMandatoryVariableErrors", "no ${UNSET_VAR?}", missing("UNSET_VAR")),
    Row(T + "TestMandatoryVariableErrorsWithNested", "${U:?on ${FOO}}", missing("U", ": on first")),
    Row(T + "TestMandatoryVariableErrorsWithNested", "${U?on ${FOO}}", missing("U", ": on first")),
    Row(T + "TestDefaultsForMandatoryVariables", "ok ${FOO:?err}", "ok first"),
    Row(T + "TestDefaultsForMandatoryVariables", "ok ${FOO?err}", "ok first"),
    Row(T + "TestDefaultsForMandatoryVariables", "ok ${BAR?err}", "ok "),
    Row(T + "withDefaultWhenAbsence", "${FOO:-${X:?unused}}", missing("X", ": unused")),
    # The operator is the first one after the name.
    Row(T + "TestPrecedence", "${UNSET_VAR?a-b}", missing("UNSET_VAR", ": a-b")),
    Row(T + "TestPrecedence", "${UNSET_VAR-err?msg}", "err?msg"),
    Row(T + "TestPrecedence", "${FOO?a-b}", "first"),
    Row(T + "TestPrecedence", "${BAR:-for empty}", "for empty"),
    Row(T + "TestPrecedence", "${UNSET_VAR-for unset}", "for unset"),
    Row(T + "TestSubstitutionFunctionChoice", "${FOO:+a:?b:-c}", "a:?b:-c"),
    Row(T + "TestSubstitutionFunctionChoice", "${UNSET+a:+b}", ""),
    Row(T + "TestSubstitutionFunctionChoice", "${UNSET-a+b?c}", "a+b?c"),
    Row(T + "TestSubstitutionFunctionChoice", "${UNSET:-a:?b}", "a:?b"),
    # Lines: an operator form finds its `}` on its own line.
    Row(T + "DefaultPattern", "${FOO}\n${BAR:-x}", "first\nx"),
    Row(T + "DefaultPattern", "${U:-a\n}", INVALID),
    Row(T + "DefaultPattern", "$FOO\n$$\n$", "first\n$\n$"),
]


def interpolated(template: str, env: dict[str, str]) -> tuple[object, list[str]]:
    text = f"services: {{web: {{image: debian:12}}}}\nx-v: {json.dumps(template)}\n"
    try:
        doc = load_text(text, environ=env)
    except HolosError as exc:
        return Err("\n".join(str(d) for d in exc.diagnostics)), []
    return doc.data["x-v"], [str(w) for w in doc.warnings]


@params(ROWS)
def test_interpolation(row: Row) -> None:
    result, warnings = interpolated(row.template, row.env)
    if isinstance(row.expected, Err):
        assert isinstance(result, Err), f"expected an error, got {result!r}"
        assert row.expected.text in result.text, result.text
    else:
        assert result == row.expected
    if row.warns:
        assert any(f"variable {row.warns} is not set" in w for w in warnings), warnings


def test_keys_are_not_interpolated() -> None:
    """12-interpolation.md: interpolation applies to values, never to keys."""
    text = 'services: {web: {image: debian:12}}\nx-map: {"$FOO": "$FOO"}\n'
    assert load_text(text, environ=ENV).data["x-map"] == {"$FOO": "first"}
