import json
from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db(transaction=True)
def test_bench_audit_prints_figures_and_leaves_an_intact_chain() -> None:
    out = StringIO()

    call_command("bench_audit", "--events", "20", "--writers", "2", stdout=out)

    figures = json.loads(out.getvalue())
    assert figures["single_writer"]["events"] == 20
    assert figures["concurrent_writers"]["events"] == 20
    assert figures["verify"] == {**figures["verify"], "events": 40, "intact": True}
