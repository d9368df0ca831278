"""The floor of the load test: the least a Django view that stores an answer can cost.

``POST /bench/floor/`` validates one small form and inserts one row into one table with one
statement in one transaction, through the same middleware as every page of the site (but
no session, no CSRF check, no ORM). bench/load_evaluators.py sends it beside the evaluators'
answers, in the same run, and compares the answers' server time with it.
"""
from django import forms
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from webapp.urls import urlpatterns as site_urlpatterns

TABLE = "bench_floor"
CREATE_TABLE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, token varchar(400) NOT NULL, "
                "answer integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")


class FloorForm(forms.Form):
    token = forms.CharField(max_length=400)
    answer = forms.IntegerField(min_value=0, max_value=99)


@csrf_exempt
@require_POST
def floor(request: HttpRequest) -> JsonResponse:
    form = FloorForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"ok": False}, status=400)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (token, answer) VALUES (%s, %s)",
                       [form.cleaned_data["token"], form.cleaned_data["answer"]])
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/floor/", floor, name="bench_floor"), *site_urlpatterns]
