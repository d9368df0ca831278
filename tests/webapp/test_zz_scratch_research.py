import io, json, time
import pytest
from tests.factories import build_open_study
from tests.webapp.research_support import fill_study
from webapp.research import exports, selectors
from evalstudy.responses import read_responses
from evalstudy.analysis import analyze

pytestmark = pytest.mark.django_db

def test_scratch(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    study = build_open_study(n_slots=6)
    fill_study(study, 5)
    text = "".join(exports.csv_chunks(study=study))
    print(text[:1500])
    t = read_responses(io.StringIO(text))
    t0=time.time()
    r = analyze(t, None, n_boot=2000, seed=0)
    print("analyze", time.time()-t0)
    print(json.dumps(r, indent=1)[:6000])
    print(json.dumps(selectors.study_progress(study=study), indent=1)[:3000])
    print("".join(exports.jsonl_chunks(study=study, salt="x"))[:1500])
