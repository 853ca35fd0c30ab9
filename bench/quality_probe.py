import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pathlib import Path
from etl.evaluate import load_truth, corpus_pages, evaluate
from etl.extract import extract, domain_of
from etl.clean import clean, load_rules
from etl.config import ExtractSettings, CleanSettings
from etl.records import Page
c = Path("/work/shared/corpus/sh_dev")
truth = load_truth(c); pages=list(corpus_pages(c))
import json
urls = {k: v["url"] for k, v in json.loads((c/"ground-truth.json").read_text()).items()}
s=ExtractSettings(); rs = load_rules(CleanSettings().rules_file)
A = {p: extract(Page(id=p, body=b, url=urls.get(p)), s) for p,b in pages}
sc,_=evaluate({k:v.text for k,v in A.items()}, truth)
print(f"extract F1={sc.f1:.4f} P={sc.precision:.4f} R={sc.recall:.4f}")
C = {k: clean(v.text, rs, domain=domain_of(urls.get(k)), captions=v.captions) for k,v in A.items()}
sc,ps=evaluate({k:v.text for k,v in C.items()}, truth)
print(f"clean   F1={sc.f1:.4f} P={sc.precision:.4f} R={sc.recall:.4f}")
import re
tok=re.compile(r"\w+")
for k,v in C.items():
    tt=" ".join(tok.findall(truth[k]))
    for r in v.removed:
        if " ".join(tok.findall(r.text)[:8]) in tt and tok.findall(r.text):
            print("  WRONGLY REMOVED", k[:8], r.rule, r.text[:120])
