"""The short fuzz pass of ``make test`` (the long one is ``make fuzz``; see fuzzing.py).

Every target runs a few thousand mutated inputs (seconds in all): no finding
is allowed, and each target must both accept and reject some inputs (a fuzzer
that only ever hits the first check tests nothing).
"""

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fuzzing
from smpdfu import cbor

_CASES = {"cbor": 4000, "framing": 3000, "header": 2000, "mcuboot": 3000, "server": 2000, "client": 3000}


@pytest.mark.parametrize("target", fuzzing.TARGETS)
def test_short_fuzz_run(target):
    count = fuzzing._Count()
    done, findings = fuzzing.fuzz(target, _CASES[target], seed=7, count=count)
    assert done == _CASES[target]
    assert findings == {}, "\n".join("%dx %s (input %s)" % (n, k, ex[:120]) for k, (n, ex) in findings.items())
    ok = sum(count.outcomes.get(k, 0) for k in ("accepted", "packet", "success answer"))
    assert ok > 0 and ok < done, count.outcomes


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 64), (1 << 64) - 1) | st.binary(max_size=40) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8) | st.integers(0, 100), kids,
                                                             max_size=5),
    max_leaves=12)  # nesting stays under the decoder's depth limit (16)


@settings(max_examples=300, deadline=None)
@given(_values, st.booleans())
def test_cbor_decodes_what_cbor2_encodes(value, canonical):
    # a real implementation's encodings, canonical or not
    assert cbor.loads(cbor2.dumps(value, canonical=canonical)) == value


def test_fuzz_finds_a_broken_decoder(monkeypatch):
    # the harness reports what escapes: a decoder that raises TypeError is a finding
    def broken(data, views=False, max_items=None):
        raise TypeError("boom")

    monkeypatch.setattr(fuzzing.cbor, "loads", broken)
    done, findings = fuzzing.fuzz("cbor", 50)
    assert done == 50 and len(findings) == 1 and "TypeError: boom" in next(iter(findings))
