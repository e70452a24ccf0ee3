"""The book's own Sphinx extension.

- Drops repeated <script> entries: sphinx-thebe's set-up runs twice in a Jupyter Book build, so its inline
  configuration (`const THEBE_JS_URL = ...`) was added twice and the browser threw a SyntaxError on each page.
- Shows docstrings on the API page as written (a literal block): riemannkit's docstrings are plain text with
  the papers' notation (|g'|, α_{i+1}, *args), which reStructuredText would misread as markup.
"""


def _unique(scripts: list) -> list:
    seen, out = set(), []
    for s in scripts:
        if isinstance(s, tuple):  # registry entries: (filename, priority, attributes)
            key = repr(s)
        else:  # sphinx.builders.html._assets._JavaScript
            key = (str(getattr(s, "filename", s) or ""), getattr(s, "priority", 0),
                   repr(sorted(getattr(s, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _dedupe_registry(app, env, docnames):
    app.registry.js_files[:] = _unique(app.registry.js_files)
    if hasattr(app.builder, "_js_files"):
        app.builder._js_files[:] = _unique(app.builder._js_files)


def _dedupe_page(app, pagename, templatename, context, doctree):
    if isinstance(context.get("script_files"), list):
        context["script_files"][:] = _unique(context["script_files"])


def _plain_docstring(app, what, name, obj, options, lines):
    if any(line.strip() for line in lines):
        lines[:] = [".. code-block:: text", ""] + ["    " + line for line in lines] + [""]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_docstring)
    app.connect("env-before-read-docs", _dedupe_registry, priority=900)
    app.connect("html-page-context", _dedupe_page, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
