"""The blast-time merge evaluator gives exactly what merge.substitutions gives."""

import pytest

from outreach.content import merge
from outreach.content.evaluation import MergeEvaluator

SOURCES = [
    "Hi {{ first_name }} {{ last_name }}",
    '{{ fields.city | default("your town") }} and {{ fields.city | upper }}',
    "{{ fields.ward }} {{ fields.ward | int + 1 }} {{ fields }} {{ postal_code[:3] }}",
    "{{ first_name | title }} <{{ email }}> {{ fields.tags | join(', ') }}",
    "{{ fields.missing.deeper | default('none') }} {{ 10 / (fields.ward | int) }}",
    "{{ fields['city'] }}/{{ fields.city.upper() }}/{{ fields[first_name] }}",
]
CONTEXTS = [
    {"first_name": "Zoë", "last_name": "O'Brien", "email": "z@example.org", "phone": "",
     "postal_code": "10001", "timezone": "", "fields": {"city": "Coeur d'Alene", "ward": "3"}},
    {"first_name": "", "last_name": "", "email": "x@example.org", "phone": "",
     "postal_code": "", "timezone": "", "fields": {"ward": "0", "tags": ["a", "<b>"]}},
    {"first_name": "<script>", "last_name": "Lee & Co", "email": "l@example.org", "phone": "",
     "postal_code": "94110", "timezone": "", "fields": {"city": "Tulsa", "ward": "x"}},
    {"first_name": "Zoë", "last_name": "Kim", "email": "k@example.org", "phone": "",
     "postal_code": "10001", "timezone": "", "fields": {"city": "Coeur d'Alene", "ward": "3"}},
    {"first_name": 5, "last_name": None, "email": "n@example.org", "phone": "",
     "postal_code": "", "timezone": "", "fields": {"city": {"nested": [1, 2]}, "ward": 7}},
    {"first_name": "Zoë", "last_name": "Kim", "email": "k@example.org", "phone": "",
     "postal_code": "10001", "timezone": "", "fields": {"city": None, "ward": "3", "Zoë": "!"}},
    {"first_name": "Zoë", "last_name": "Kim", "email": "k@example.org", "phone": "",
     "postal_code": "10001", "timezone": "", "fields": {"ward": "4", "member": "A-1"}},
]


@pytest.mark.parametrize("source", SOURCES)
def test_same_substitutions_as_merge_for_every_recipient(source):
    merges, _ = merge.extract("", source, "")
    evaluator = MergeEvaluator(merges)
    for _ in range(2):  # the second round is answered from the memo
        for context in CONTEXTS:
            assert evaluator.substitutions(context, "tok", "https://x/u/tok") == \
                merge.substitutions(merges, context, "tok", "https://x/u/tok")


def test_broken_merges_merge_nothing_and_are_remembered_as_such():
    merges, _ = merge.extract("{{ fields.ward | int // 0 }}{{ first_name }}")
    evaluator = MergeEvaluator(merges)
    for context in CONTEXTS + CONTEXTS:
        subs = evaluator.substitutions(context, "", "")
        assert subs["%%m0%%"] == "" and subs["%%m1%%"] == str(context["first_name"])
