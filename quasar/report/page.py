"""The report page: one HTML file with its CSS and JavaScript inline (no network, no external files).

The photo data is one JSON block; the thumbnails are a second JSON block of ``data:`` URIs (or of
relative file names when they are written beside the page). The script renders one page of cards at
a time (pagination keeps the DOM small for 10,000 photos) and images are lazy-loaded. File names
are set with ``textContent`` and attributes, never as HTML. The body's ``data-img-loaded`` /
``data-img-failed`` / ``data-img-total`` attributes count the current page's images, for tests; the
URL fragment ``#eager`` turns lazy loading off; ``#groups``, ``#failed`` and ``#worst`` open that view.
"""

from __future__ import annotations

import html
import json

CSS = """
:root{--bg:#f6f6f4;--fg:#1d1d1f;--muted:#6b6b70;--card:#fff;--line:#e2e2e0;--accent:#2f6fdf}
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
background:var(--bg);color:var(--fg)}header{padding:16px 24px 8px;background:#fff;border-bottom:1px solid var(--line)}
h1{font-size:20px;margin:0 0 4px}.muted{color:var(--muted)}.hist{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0 4px}
.hist figure{margin:0;background:#fafafa;border:1px solid var(--line);border-radius:6px;padding:6px 8px}
.hist figcaption{font-size:12px;color:var(--muted)}.hist b{color:var(--fg)}
nav{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:8px;align-items:center;padding:8px 24px;
background:#fffffff0;border-bottom:1px solid var(--line)}
nav button,nav select,nav input{font:inherit;padding:4px 10px;border:1px solid var(--line);border-radius:6px;background:#fff}
nav button.on{background:var(--accent);color:#fff;border-color:var(--accent)}nav .sep{width:1px;height:22px;background:var(--line)}
main{padding:16px 24px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(196px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden;display:flex;flex-direction:column}
.thumb{height:150px;display:flex;align-items:center;justify-content:center;background:#ececea}
.thumb img{max-width:100%;max-height:150px;display:block}.thumb .none{color:var(--muted);font-size:12px;padding:8px;text-align:center}
.meta{padding:6px 8px 8px}.name{font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.big{font-size:18px;font-weight:600}.rankno{float:right;color:var(--muted);font-size:12px;margin-top:4px}
.bars{margin-top:4px}.bar{display:grid;grid-template-columns:78px 1fr 34px;gap:4px;align-items:center;font-size:11px}
.bar .t{height:7px;background:#eee;border-radius:4px;overflow:hidden}.bar .f{height:100%}
.bar .v{text-align:right;color:var(--muted)}.group{background:#fff;border:1px solid var(--line);border-radius:8px;
padding:8px 10px;margin-bottom:12px}.group h3{margin:0 0 6px;font-size:14px}.row{display:flex;gap:10px;overflow-x:auto}
.row .card{flex:0 0 180px}.keep{outline:3px solid #1e9e4a}.drop{opacity:.55}.badge{display:inline-block;
font-size:11px;font-weight:700;padding:1px 6px;border-radius:4px;color:#fff;background:#1e9e4a}
.badge.d{background:#9a9a9a}table{border-collapse:collapse;width:100%;background:#fff}
td,th{border:1px solid var(--line);padding:4px 8px;text-align:left;font-size:13px;vertical-align:top}
td.p{word-break:break-all}.pager{margin-left:auto}
"""

SCRIPT = r"""
(function(){
const D=JSON.parse(document.getElementById('quasar-data').textContent);
const T=JSON.parse(document.getElementById('quasar-thumbs').textContent);
const H=D.heads, eager=location.hash.indexOf('eager')>=0;
const S={view:'photos',head:D.sort,desc:true,page:0,per:100,filter:'',singles:false};
const $=(t,c,txt)=>{const e=document.createElement(t);if(c)e.className=c;if(txt!=null)e.textContent=txt;return e;};
const col=v=>'hsl('+Math.round(v*120)+',62%,44%)', fmt=v=>v==null?'–':v.toFixed(3);
const ok=D.photos.filter(p=>p[5]==null), bad=D.photos.filter(p=>p[5]!=null);
let loaded=0,failed=0,total=0;
function track(img){total++;img.addEventListener('load',()=>{loaded++;mark();});
  img.addEventListener('error',()=>{failed++;mark();});}
function mark(){const b=document.body.dataset;b.imgLoaded=loaded;b.imgFailed=failed;b.imgTotal=total;}
function card(p,inGroup){
  const c=$('div','card'), th=$('div','thumb');
  if(p[2]>=0){const im=new Image();im.loading=eager?'eager':'lazy';im.decoding='async';im.width=p[3];im.height=p[4];
    im.alt=p[0];track(im);im.src=T[p[2]];th.appendChild(im);} else th.appendChild($('div','none',p[10]||'no preview'));
  c.appendChild(th);const m=$('div','meta');const nm=$('div','name',p[0].split('/').pop());nm.title=p[0];m.appendChild(nm);
  const hi=H.indexOf(S.head), v=p[1][hi];
  if(inGroup){const b=$('span','badge'+(p[8]?'':' d'),p[8]?'KEEP':'drop');m.appendChild(b);
    m.appendChild($('span','rankno','#'+(p[7]+1)+(p[9]!=null?'  sim '+p[9].toFixed(2):'')));c.classList.add(p[8]?'keep':'drop');}
  const big=$('div','big',fmt(v));big.style.color=v==null?'':col(v);m.appendChild(big);
  const bars=$('div','bars');
  H.forEach((h,i)=>{const r=$('div','bar');r.title=h+': '+fmt(p[1][i]);r.appendChild($('span',null,h));const t=$('div','t'),f=$('div','f');
    const x=p[1][i];if(x!=null){f.style.width=(100*x).toFixed(1)+'%';f.style.background=col(x);}t.appendChild(f);r.appendChild(t);
    r.appendChild($('span','v',fmt(x)));bars.appendChild(r);});
  m.appendChild(bars);c.appendChild(m);return c;}
function pager(n,per){const pages=Math.max(1,Math.ceil(n/per));S.page=Math.min(S.page,pages-1);
  document.getElementById('pageinfo').textContent=(S.page+1)+' / '+pages+'  ('+n+')';return pages;}
function photos(){const hi=H.indexOf(S.head), f=S.filter.toLowerCase();
  let list=ok.filter(p=>!f||p[0].toLowerCase().indexOf(f)>=0);
  list.sort((a,b)=>{const x=a[1][hi],y=b[1][hi];if(x==null&&y==null)return a[11]-b[11];if(x==null)return 1;if(y==null)return -1;
    return (S.desc?y-x:x-y)||a[11]-b[11];});
  pager(list.length,S.per);const g=$('div','grid');list.slice(S.page*S.per,(S.page+1)*S.per).forEach(p=>g.appendChild(card(p,false)));return g;}
function groups(){const by=new Map();ok.forEach(p=>{if(p[6]==null)return;if(!by.has(p[6]))by.set(p[6],[]);by.get(p[6]).push(p);});
  let gs=[...by.entries()].filter(e=>S.singles||e[1].length>1);gs.sort((a,b)=>b[1].length-a[1].length||a[0]-b[0]);
  const per=20;pager(gs.length,per);const box=$('div');
  gs.slice(S.page*per,(S.page+1)*per).forEach(([gid,m])=>{m.sort((a,b)=>a[7]-b[7]);const d=$('div','group');
    d.appendChild($('h3',null,'Group '+gid+' · '+m.length+' photo'+(m.length>1?'s':'')+' · keep '+m.filter(p=>p[8]).length));
    const r=$('div','row');m.forEach(p=>r.appendChild(card(p,true)));d.appendChild(r);box.appendChild(d);});
  if(!gs.length)box.appendChild($('p','muted','No groups with more than one photo.'));return box;}
function failures(){pager(bad.length,bad.length||1);const t=$('table');const h=$('tr');h.appendChild($('th',null,'file'));
  h.appendChild($('th',null,'reason'));t.appendChild(h);bad.forEach(p=>{const r=$('tr');r.appendChild($('td','p',p[0]));
  r.appendChild($('td',null,p[5]));t.appendChild(r);});return t;}
function render(){loaded=failed=total=0;const m=document.getElementById('content');m.replaceChildren(
  S.view==='photos'?photos():S.view==='groups'?groups():failures());mark();
  document.querySelectorAll('[data-view]').forEach(b=>b.classList.toggle('on',b.dataset.view===S.view));
  document.getElementById('best').classList.toggle('on',S.desc);document.getElementById('worst').classList.toggle('on',!S.desc);
  document.body.dataset.view=S.view;document.body.dataset.cards=m.querySelectorAll('.card').length;}
const sel=document.getElementById('head');H.forEach(h=>{const o=$('option',null,h);o.value=h;sel.appendChild(o);});sel.value=S.head;
sel.onchange=()=>{S.head=sel.value;S.page=0;render();};
document.getElementById('best').onclick=()=>{S.desc=true;S.page=0;render();};
document.getElementById('worst').onclick=()=>{S.desc=false;S.page=0;render();};
document.getElementById('per').onchange=e=>{S.per=+e.target.value;S.page=0;render();};
document.getElementById('filter').oninput=e=>{S.filter=e.target.value;S.page=0;render();};
document.getElementById('singles').onchange=e=>{S.singles=e.target.checked;S.page=0;render();};
document.getElementById('prev').onclick=()=>{if(S.page>0){S.page--;render();scrollTo(0,0);}};
document.getElementById('next').onclick=()=>{S.page++;render();scrollTo(0,0);};
document.querySelectorAll('[data-view]').forEach(b=>b.onclick=()=>{S.view=b.dataset.view;S.page=0;render();});
if(location.hash.indexOf('groups')>=0&&D.groups)S.view='groups';
if(location.hash.indexOf('failed')>=0)S.view='failed';
if(location.hash.indexOf('worst')>=0)S.desc=false;
render();})();
"""


# Inside <script> the HTML parser still reacts to "</script", "<!--" and "<script": every "<" (and ">", "&",
# and the JS line separators) in the JSON is written as a \uXXXX escape, which JSON.parse reads back unchanged.
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_for_script(value) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element whatever strings it holds."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in _JSON_ESCAPES.items():
        text = text.replace(ch, esc)
    return text


def _json_block(element_id: str, value) -> str:
    text = json_for_script(value)
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def render(*, title: str, summary: str, histograms: str, data: dict, thumbs: list[str], has_groups: bool,
           failed: int) -> str:
    """The whole page as a string."""
    views = ['<button data-view="photos">Photos</button>']
    if has_groups:
        views.append('<button data-view="groups">Groups</button>')
    views.append(f'<button data-view="failed">Failed ({failed})</button>')
    singles = ('<label><input type="checkbox" id="singles"> single photos</label>' if has_groups
               else '<input type="checkbox" id="singles" hidden>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{CSS}</style></head>
<body><header><h1>{html.escape(title)}</h1><div class="muted">{summary}</div><div class="hist">{histograms}</div></header>
<nav>{''.join(views)}<span class="sep"></span><label>sort by <select id="head"></select></label>
<button id="best">best first</button><button id="worst">worst first</button>
<input id="filter" type="search" placeholder="filter by name">{singles}
<select id="per"><option value="50">50</option><option value="100" selected>100</option><option value="200">200</option></select>
<span class="pager"><button id="prev">&lsaquo;</button> <span id="pageinfo"></span> <button id="next">&rsaquo;</button></span></nav>
<main id="content"></main>
{_json_block("quasar-data", data)}
{_json_block("quasar-thumbs", thumbs)}
<script>{SCRIPT}</script></body></html>
"""
