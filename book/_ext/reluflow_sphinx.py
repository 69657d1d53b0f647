"""Sphinx extension used by the book build (``_config.yml``: ``sphinx.extra_extensions``).

Eleven small jobs:

* the run mode is part of the build environment: the configuration value
  ``reluflow_fast`` defaults to :func:`reluflow.book.fast_default` (the environment
  variable ``RELUFLOW_FAST`` when the build starts) and is registered with
  ``rebuild="env"``, so a build in the other mode re-reads, hence re-executes, every page
  instead of reusing the previous mode's outputs;
* references to re-exported names such as ``reluflow.Dataset`` resolve to the object's
  documented home (``reluflow.engine.data.Dataset``), so docstrings can name objects the way
  users import them while ``-n`` (nitpicky) still checks them;
* matplotlib's ``to_jshtml`` animations link Font Awesome 4.4 from a CDN for their button
  icons; the book's own player (:func:`reluflow.viz.animation.offline_player`) draws them
  inline and has no link, and any other such output has the link dropped
  (:func:`reluflow.viz.animation.drop_cdn_font_awesome`; the theme ships Font Awesome), so
  the book makes no third-party request (it reads offline, and the browser test can insist
  on that);
* before any page is read (``builder-inited``), it runs ``book/_static/make_overview.py``
  (if present under the source folder) to regenerate ``book/_static/overview.html``, the
  introduction's overview figure, so every build path (``make book``, the browser test's
  build, a manual ``jupyter-book build``) shows the figure of the current code; the
  ``panels-figure`` directive shows such a :class:`reluflow.viz.plots.Panels` snippet as
  a numbered figure with a caption, like ``glue:figure`` does in a notebook;
* the static explorers (:mod:`reluflow.viz.explorers`): the JavaScript of Vega, Vega-Lite
  and Vega-Embed is written once into the build's ``_static`` folder
  (:data:`~reluflow.viz.explorers.BUNDLE_NAME`, from the ``vl-convert-python`` package)
  and loaded, as a module, by the pages that show an explorer (an element of class
  ``reluflow-explorer``), so the explorers work offline;
* Sphinx 7.4 lists an inline script added by an extension during the build twice
  (sphinx-thebe's, which then fails with "Identifier 'THEBE_JS_URL' has already been
  declared" in the browser console); identical scripts are listed once per page;
* MathJax is served by the book itself: when ``mathjax_path`` is a relative path under
  ``_static`` (``_config.yml`` sets ``mathjax/tex-mml-chtml.js``), the MathJax 3.2.2
  files of the ``django-static-mathjax`` package (a dependency of the book extra) are
  copied there at the end of the build, so the HTML works with no network;
* the repository URL is one setting, ``repository.url`` in ``_config.yml``: when it is
  set, the page header gets the repository, issue and launch (Binder, Colab) buttons;
  when it is empty, none of them (a button to a placeholder would lead nowhere);
* one syntax for computed values that the book and JupyterLab both render: the chapters
  quote a glued value with ``{eval}`name``` (:mod:`reluflow.book` binds each glued
  object under its key in the kernel, so jupyterlab-myst evaluates the role there), and
  the build makes ``eval`` MyST-NB's glue paste role, so it pastes the glued output with
  execution off too (the test pipeline builds papermill outputs); a ``figure`` directive
  without an image whose first paragraph is ``{eval}`key``` (what jupyterlab-myst
  renders as a figure) is MyST-NB's ``glue:figure`` of ``key`` (:class:`EvalFigure`);
* citations that read in JupyterLab too: the chapters cite with a Markdown link to a
  bibliography key, ``[Wang & Ma (2023)](#wang2023multiphase)`` (JupyterLab shows the
  link text), and the build makes each such link sphinxcontrib-bibtex's citation of the
  key, ``{cite:p}`` when the link text starts with a parenthesis, ``{cite:t}`` otherwise
  (:func:`citation_kind`), so the bibliography lists it and ``-n`` checks the key;
  likewise a link to another page's proposition, ``[Plateau escape](#prop-plateau-escape)``
  (JupyterLab resolves ``{prf:ref}`` only within a notebook), is sphinx-proof's reference
  to it, with the link text (:class:`ProofLinks`).
"""

from __future__ import annotations

import importlib
import re
import runpy
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.directives.patches import Figure
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective

from reluflow.book import fast_default
from reluflow.viz.animation import drop_cdn_font_awesome

__all__ = [
    "EVAL_FIGURE",
    "EXPLORER_CLASS",
    "MATHJAX_SKIP",
    "OVERVIEW_SCRIPT",
    "EvalFigure",
    "PanelsFigure",
    "ProofLinks",
    "canonical_name",
    "citation_kind",
    "copy_mathjax",
    "drop_cdn_font_awesome",
    "mathjax_source",
    "page_shows_explorer",
    "repository_buttons",
    "setup",
]

#: MathJax bundles the book does not load (other inputs/outputs, node); not copied.
MATHJAX_SKIP = ("mml-chtml.js", "mml-svg.js", "tex-chtml.js", "tex-chtml-full.js",
                "tex-chtml-full-speech.js", "tex-mml-svg.js", "tex-svg.js", "tex-svg-full.js",
                "node-main.js")

#: The script drawing the introduction's overview figure, relative to the source folder.
OVERVIEW_SCRIPT = Path("book", "_static", "make_overview.py")


def canonical_name(target: str) -> str | None:
    """Return the documented dotted name of ``target`` if it differs, else ``None``.

    ``reluflow.Dataset`` becomes ``reluflow.engine.data.Dataset`` (from the object's
    ``__module__`` and ``__qualname__``); attributes after the object are kept, so
    ``reluflow.Trajectory.save`` becomes ``reluflow.engine.trajectory.Trajectory.save``.
    Names outside ``reluflow`` or that do not import give ``None``.
    """
    parts = target.split(".")
    if parts[0] != "reluflow":
        return None
    module: ModuleType | None = None
    i = len(parts)
    while i > 0:
        try:
            module = importlib.import_module(".".join(parts[:i]))
            break
        except ImportError:
            i -= 1
    rest = parts[i:]
    if module is None or not rest:
        return None
    head = getattr(module, rest[0], None)
    mod = getattr(head, "__module__", None)
    qual = getattr(head, "__qualname__", None)
    if not isinstance(mod, str) or not isinstance(qual, str):
        return None
    canonical = ".".join([mod, qual, *rest[1:]])
    return None if canonical == target else canonical


def _resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """``missing-reference`` handler: retry a ``py`` reference under its canonical name."""
    if node.get("refdomain") != "py":
        return None
    canonical = canonical_name(node.get("reftarget", ""))
    if canonical is None:
        return None
    retry = node.deepcopy()
    retry["reftarget"] = canonical
    return env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], canonical, retry, contnode
    )


def _drop_cdn_links(app: Any, doctree: nodes.document, docname: str) -> None:
    """``doctree-resolved`` handler: apply :func:`drop_cdn_font_awesome` to raw HTML."""
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "html" in node.get("format", "").split() and "font-awesome/4.4.0" in text:
            node.replace_self(nodes.raw("", drop_cdn_font_awesome(text), format=node["format"]))


def _dedupe_scripts(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """``html-page-context`` handler: keep the first of identical ``script_files``."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for js in scripts:
        attrs = getattr(js, "attributes", {})
        key = (getattr(js, "filename", js) or "", getattr(js, "priority", 0),
               tuple(sorted(attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


#: The class of the element that wraps a static explorer (reluflow.viz.explorers).
EXPLORER_CLASS = "reluflow-explorer"


def page_shows_explorer(body: str) -> bool:
    """Whether a page body holds a static explorer's element (not a text that quotes it).

    >>> page_shows_explorer('<div class="reluflow-explorer" id="reluflow-explorer-phase1">')
    True
    >>> page_shows_explorer('<code>&lt;div class="reluflow-explorer"&gt;</code>')
    False
    """
    return f'<div class="{EXPLORER_CLASS}" id="' in body


def _explorer_script(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """``html-page-context`` handler: a page with an explorer loads the Vega bundle."""
    if page_shows_explorer(str(context.get("body", ""))):
        from reluflow.viz.explorers import BUNDLE_NAME

        app.add_js_file(BUNDLE_NAME, type="module")


def _write_explorer_bundle(app: Any, exception: Exception | None) -> None:
    """``build-finished`` handler: write the Vega bundle into the HTML output's ``_static``."""
    if exception is not None or getattr(app.builder, "format", "") != "html":
        return
    from reluflow.viz.explorers import write_bundle

    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    write_bundle(static)


def _make_overview(app: Any) -> None:
    """``builder-inited`` handler: run :data:`OVERVIEW_SCRIPT` to write ``overview.html``."""
    script = Path(app.srcdir) / OVERVIEW_SCRIPT
    if not script.is_file():
        return
    namespace = runpy.run_path(str(script))
    namespace["make_book_overview"](script.with_name("overview.html"))


class PanelsFigure(SphinxDirective):
    """``panels-figure``: a numbered figure made of a Panels HTML snippet and a caption.

    The argument is the snippet's path relative to the document; the content is the
    caption; ``:name:`` makes it a ``numref`` target, ``:alt:`` is not needed (the
    snippet's images carry their own).
    """

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {"name": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        rel, path = self.env.relfn2path(self.arguments[0])
        self.env.note_dependency(rel)
        html = Path(path).read_text(encoding="utf-8")
        if 'class="rf-panels"' not in html:
            raise self.error(f"{self.arguments[0]} is not a reluflow Panels snippet")
        figure = nodes.figure("", nodes.raw("", html, format="html"))
        caption_nodes = self.parse_content_to_nodes() if self.content else []
        if caption_nodes and isinstance(caption_nodes[0], nodes.paragraph):
            first = caption_nodes[0]
            figure += nodes.caption(first.rawsource, "", *first.children)
            if caption_nodes[1:]:
                figure += nodes.legend("", *caption_nodes[1:])
        self.set_source_info(figure)
        self.add_name(figure)
        return [figure]


#: The first paragraph of a figure without an image: the ``{eval}`` of a glued figure.
EVAL_FIGURE = re.compile(r"\{eval\}`([A-Za-z]\w*)`")


class EvalFigure(Figure):
    """``figure``: with an image argument, Sphinx's figure; without one, a glued figure.

    Without an argument the content must start with a paragraph that is exactly
    ``{eval}`key```; the rest is the caption (and legend), and the directive is MyST-NB's
    ``glue:figure`` of ``key`` with the same options (``:name:`` for ``numref``).  This is
    the form JupyterLab's MyST renderer shows as a numbered figure, with the value the
    kernel evaluates.
    """

    required_arguments = 0
    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        if self.arguments:
            return super().run()
        lines = list(self.content)
        end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
        first = " ".join(line.strip() for line in lines[:end])
        found = EVAL_FIGURE.fullmatch(first)
        if found is None:
            raise self.error("a figure without an image must start with the paragraph "
                             f"{{eval}}`key` of a glued figure, got {first!r}")
        skip = next((i for i in range(end, len(lines)) if lines[i].strip()), len(lines))
        caption = StringList(lines[skip:], items=self.content.items[skip:])
        from myst_nb.ext.glue.directives import PasteFigureDirective

        paste = PasteFigureDirective(
            "glue:figure", [found.group(1)], dict(self.options), caption, self.lineno,
            self.content_offset + skip, self.block_text, self.state, self.state_machine)
        result: list[nodes.Node] = paste.run()
        return result


def _eval_pastes_glue(app: Any) -> None:
    """``builder-inited`` handler: ``eval`` is MyST-NB's glue paste role (any mime type).

    Registered after every extension's ``setup`` (MyST-NB registers its own ``eval``,
    which needs a live kernel during the parse).
    """
    from myst_nb.ext.glue.roles import PasteRoleAny

    app.add_role("eval", PasteRoleAny(), override=True)


def citation_kind(text: str) -> str:
    """The citation role of a link to a bibliography key: ``"p"`` or ``"t"``.

    ``[(Wang & Ma, 2023)](#key)`` is parenthetical (``{cite:p}``), anything else, e.g.
    ``[Wang & Ma (2023)](#key)``, names the authors in the sentence (``{cite:t}``).

    >>> citation_kind("(Wang & Ma, 2023)"), citation_kind("Wang & Ma (2023)")
    ('p', 't')
    """
    return "p" if text.lstrip().startswith("(") else "t"


def _link_citations(app: Any, doctree: nodes.document) -> None:
    """``doctree-read`` handler: a link ``[text](#key)`` to a bibliography key is a citation.

    MyST-Parser leaves such a link, which no label of the page matches, as a ``myst``
    cross-reference to ``key``; it becomes the node sphinxcontrib-bibtex's
    ``cite:p``/``cite:t`` role builds, and the citation is recorded in its domain, as the
    role does (so the bibliography lists it).
    """
    from sphinx import addnodes
    from sphinxcontrib.bibtex.citation_target import parse_citation_targets
    from sphinxcontrib.bibtex.roles import CitationRef

    if "cite" not in app.env.domains:  # no bibliography configured: nothing to cite
        return
    domain = app.env.get_domain("cite")
    keys = domain.bibdata.data.entries
    for ref in list(doctree.findall(addnodes.pending_xref)):
        key = str(ref.get("reftarget", ""))
        if ref.get("reftype") != "myst" or ref.get("refdomain") or key not in keys:
            continue
        kind = citation_kind(ref.astext())
        rawtext = f"{{cite:{kind}}}`{key}`"
        xref = addnodes.pending_xref(rawtext, refdoc=app.env.docname, refdomain="cite",
                                     reftype=kind, refexplicit=False, refwarn=False,
                                     reftarget=key)
        xref += nodes.inline(rawtext, key, classes=["xref", "cite", f"cite-{kind}"])
        xref.source, xref.line = ref.source, ref.line
        doctree.note_explicit_target(xref, xref)
        domain.citation_refs.append(CitationRef(
            citation_ref_id=xref["ids"][0], docname=app.env.docname, line=ref.line or 0,
            targets=list(parse_citation_targets(key))))
        ref.replace_self(xref)


class ProofLinks(SphinxPostTransform):
    """A link ``[title](#label)`` to a ``prf`` label (a proposition) is a ``prf:ref``.

    MyST-Parser would resolve such a link through every domain's ``resolve_any_xref``,
    which sphinx-proof answers only for its own ``prf`` references; so, before MyST's
    resolver (priority 9), the link becomes one, shown with the link's text.
    """

    default_priority = 5

    def run(self, **kwargs: Any) -> None:
        from sphinx import addnodes

        proofs = getattr(self.env, "proof_list", {})
        for node in self.document.findall(addnodes.pending_xref):
            if (node.get("reftype") == "myst" and not node.get("refdomain")
                    and node.get("reftarget") in proofs):
                node["refdomain"], node["reftype"] = "prf", "ref"


def mathjax_source() -> Path:
    """The ``es5`` folder of MathJax 3.2.2 in the ``django-static-mathjax`` package.

    Raises
    ------
    RuntimeError
        If the package is missing (install the book extra: ``pip install -e '.[book]'``).
    """
    try:
        import mathjax
    except ImportError:
        raise RuntimeError(
            "the book serves MathJax itself: install django-static-mathjax "
            "(part of the book extra, pip install -e '.[book]')") from None
    es5 = Path(next(iter(mathjax.__path__))) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise RuntimeError(f"no MathJax tex-mml-chtml.js in {es5}")
    return es5


def copy_mathjax(static_dir: Path, mathjax_path: str) -> Path | None:
    """Copy MathJax into ``static_dir`` when ``mathjax_path`` is a relative path there.

    ``mathjax/tex-mml-chtml.js`` copies the MathJax ``es5`` tree (without the bundles of
    :data:`MATHJAX_SKIP`) to ``static_dir/mathjax``; an absolute URL copies nothing.
    Returns the folder written, or ``None``.
    """
    if "://" in mathjax_path or mathjax_path.startswith("/"):
        return None
    rel = Path(mathjax_path)
    if rel.name != "tex-mml-chtml.js" or ".." in rel.parts:
        raise RuntimeError(f"mathjax_path must be <folder>/tex-mml-chtml.js, got {mathjax_path!r}")
    target = static_dir / rel.parent
    shutil.copytree(mathjax_source(), target, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n in MATHJAX_SKIP])
    return target


def _copy_mathjax(app: Any, exception: Exception | None) -> None:
    """``build-finished`` handler: :func:`copy_mathjax` into the HTML build's ``_static``."""
    if exception is None and getattr(app.builder, "format", "") == "html":
        copy_mathjax(Path(app.outdir) / "_static", app.config.mathjax_path)


def repository_buttons(theme_options: dict[str, Any]) -> dict[str, Any]:
    """The theme options with the repository, issue and launch buttons set from the URL.

    With a non-empty ``repository_url`` the repository and issue buttons are switched on
    (the launch buttons of ``launch_buttons`` stay); without one all of them are off.
    """
    out = dict(theme_options)
    url = str(out.get("repository_url") or "").strip()
    out["use_repository_button"] = out["use_issues_button"] = bool(url)
    if not url:
        out.pop("repository_url", None)
        out["launch_buttons"] = {}
    return out


def _set_buttons(app: Any, config: Any) -> None:
    """``config-inited`` handler: apply :func:`repository_buttons` to the theme options."""
    config.html_theme_options = repository_buttons(config.html_theme_options or {})


def setup(app: Any) -> dict[str, Any]:
    """Register ``reluflow_fast`` (``rebuild="env"``), the handlers and directives above."""
    app.add_config_value("reluflow_fast", fast_default(), "env", types=[bool])
    app.connect("config-inited", _set_buttons)
    app.connect("build-finished", _copy_mathjax)
    app.connect("missing-reference", _resolve_reexport)
    app.connect("doctree-resolved", _drop_cdn_links)
    app.connect("html-page-context", _explorer_script)
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("build-finished", _write_explorer_bundle)
    app.connect("builder-inited", _make_overview)
    app.connect("builder-inited", _eval_pastes_glue)
    app.connect("doctree-read", _link_citations)
    app.add_post_transform(ProofLinks)
    app.add_directive("panels-figure", PanelsFigure)
    app.add_directive("figure", EvalFigure, override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
