"""The browser UI (Gradio): chat with sources, and the knowledge base. Wiring only.

The only module that imports gradio. Every callback here unpacks component values, calls
the library (chat.ChatService, kb.KnowledgeBase, views) and packs the result; the logic
lives there and is tested there.

    $ legalrag serve                      # or: python app.py, or: bash scripts/start.sh
    legalrag: 聊天界面 http://127.0.0.1:7860/

``start(settings)`` brings the index up (building it on first launch: the chat starts as
soon as BM25 and exact lookup are live, embeddings continue in the background), loads the
models in the background and starts the server without blocking; ``serve`` does that,
prints the URL and waits for Ctrl-C.

Serving choices (issue 6, "Exposure"): binds settings.host (127.0.0.1 by default); with
auth_user/auth_password set, Gradio's login protects the page, the config, the upload
route and every API route; no ``allowed_paths``, and the corpus, index and cache folders
are blocked, so the server only serves its own assets and this session's uploads; no
telemetry, no run history in the browser, no external fonts.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from legalrag.answer.llm import ChatModel
from legalrag.config import Settings
from legalrag.errors import ConfigError, LegalRagError
from legalrag.progress import ProgressFactory, terminal_progress
from legalrag.retrieval.live import LiveRetriever
from legalrag.web import api, views
from legalrag.web.chat import EMPTY_QUESTION, HINT_TITLE, ChatService
from legalrag.web.citecheck import CitationCheck
from legalrag.web.history import History
from legalrag.web.history_panel import HistoryPanel, owner
from legalrag.web.jobs import STAGES, IndexJobs, stage_unit
from legalrag.web.kb import KnowledgeBase
from legalrag.web.security import middleware as security_middleware
from legalrag.web.session import ANSWER_LENGTHS, MAX_SOURCES, MODE_CHOICES, ChatOptions, ChatSession
from legalrag.web.startup import index_state, start_update, wait_until_live
from legalrag.web.uploads import Upload, UploadPlan

log = logging.getLogger(__name__)

# Questions handled at once. Retrieval runs in parallel; generation takes turns in the
# model's queue, and a waiting user is shown their place in it (not Gradio's queue).
CHAT_CONCURRENCY = 16
QUEUE_MAX = 64
STATUS_SECONDS = 2.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")

CSS = """
#lr-sources { max-height: 78vh; overflow-y: auto; }
.lr-notice { font-size: .9em; color: var(--body-text-color-subdued); }
.lr-cite.lr-verified { color: #15803d; }
.lr-cite.lr-repealed { text-decoration: line-through; }
.lr-cite.lr-invented, .lr-cite.lr-invalid { color: #b91c1c; }
.lr-cite.lr-not_retrieved { color: #b45309; }
a.lr-cite { text-decoration: underline dotted; cursor: pointer; }
.gradio-container button:disabled { opacity: .45; cursor: not-allowed; }
.lr-marker { font-size: .85em; border-radius: 4px; padding: 0 .15em; background: #dcfce7; }
.lr-badge { font-size: .78em; padding: 0 .3em; margin: 0 .15em; border-radius: 4px;
            white-space: nowrap; }
.lr-badge.lr-verified { background: #dcfce7; color: #166534; }
.lr-badge.lr-not_retrieved { background: #fef3c7; color: #92400e; }
.lr-badge.lr-invented, .lr-badge.lr-invalid { background: #fee2e2; color: #991b1b; }
.lr-badge.lr-repealed { background: #e5e7eb; color: #7f1d1d; }
.lr-abstain { border-left: 4px solid #64748b; background: #f1f5f9; color: #1e293b;
              padding: .5em .9em; border-radius: 6px; }
.lr-abstain-title { font-weight: 700; color: #475569; }
.lr-error { border-left: 4px solid #dc2626; background: #fef2f2; color: #991b1b;
            padding: .4em .8em; border-radius: 6px; }
/* An error message is no answer to rate: only its copy button (the first) stays. */
#lr-chat .bot-row:has(.lr-error) + .message-buttons .icon-button:not(:first-of-type) {
    display: none; }
.lr-ok { border-left: 4px solid #16a34a; background: #f0fdf4; color: #166534;
         padding: .4em .8em; border-radius: 6px; }
.lr-queue { border-left: 4px solid #d97706; background: #fffbeb; color: #92400e;
            padding: .4em .8em; border-radius: 6px; }
.lr-pending { color: var(--body-text-color-subdued); }
.lr-provision { border-left: 4px solid #15803d; background: #f0fdf4; padding: .35em .8em;
                border-radius: 6px; margin-bottom: .5em; }
.lr-provision-head { font-size: .85em; color: #166534; font-weight: 600; }
.lr-provision blockquote { margin: .2em 0 0; padding: 0; border: 0; }
.lr-provision blockquote p { margin: .15em 0; }
mark.lr-hl { background: #fef08a; color: inherit; padding: 0 .1em; }
.lr-note { color: #92400e; font-size: .9em; }
.lr-premise { color: #92400e; background: #fffbeb; border-left: 3px solid #d97706;
              padding: .4em .6em; margin-bottom: .5em; }
.lr-warn { color: #b45309; font-size: .9em; }
.lr-rewrite { color: #475569; font-size: .85em; }
.lr-disclaimer, .lr-notes { color: #6b7280; font-size: .82em; }
.lr-cursor { animation: lr-blink 1s steps(2) infinite; }
@keyframes lr-blink { to { opacity: 0; } }
.lr-turn-q, .lr-turn summary { font-weight: 600; margin: .3em 0; }
.lr-src { border: 1px solid var(--border-color-primary); border-radius: 8px;
          padding: .45em .7em; margin: .45em 0; scroll-margin-top: .5em; }
.lr-src-heading { font-weight: 600; }
.lr-src-n { color: #15803d; font-weight: 600; }
.lr-src-meta { font-size: .8em; color: var(--body-text-color-subdued); }
.lr-src-text p { margin: .25em 0; }
.lr-force { padding: 0 .3em; border-radius: 4px; }
.lr-in-force { background: #dcfce7; color: #166534; }
.lr-not-in-force { background: #fee2e2; color: #991b1b; }
.lr-unused { font-style: italic; }
.lr-flash { animation: lr-flash 1.8s ease-out; }
@keyframes lr-flash { from { background: #fde68a; } to { background: transparent; } }
.lr-status th { text-align: left; padding-right: 1em; white-space: nowrap; }
.lr-parts { list-style: none; padding: 0; margin: 0; }
.lr-parts .lr-off { color: #b45309; }
.lr-bar { height: 6px; background: #e5e7eb; border-radius: 3px; margin-top: .3em; }
.lr-bar div { height: 6px; background: #2563eb; border-radius: 3px; }
.lr-upload { border: 1px solid var(--border-color-primary); border-radius: 8px;
             padding: .4em .7em; margin: .4em 0; }
.lr-rejected { border-color: #dc2626; }
.lr-reason { color: #991b1b; }
.lr-index-ok { color: var(--body-text-color-subdued); font-size: .85em; }
.lr-cite.lr-in_force { color: #15803d; }
.lr-cite.lr-misquoted { color: #b91c1c; }
.lr-cite.lr-unsupported { color: #b45309; }
.lr-cite.lr-unresolved { color: #6b7280; }
.lr-badge.lr-in_force { background: #dcfce7; color: #166534; }
.lr-badge.lr-misquoted { background: #fee2e2; color: #991b1b; }
.lr-badge.lr-unsupported { background: #fef3c7; color: #92400e; }
.lr-badge.lr-unresolved { background: #f3f4f6; color: #4b5563; }
.lr-uncited { color: #4b5563; text-decoration: underline dotted #9ca3af; }
.lr-badge.lr-uncited { background: #f3f4f6; color: #4b5563; }
/* Gradio 6 titles a toast with its type ("Info") whatever title it is given: the page is
   in Chinese (a browser session saw "Info" over the empty-question hint) */
.toast-title.info { font-size: 0; }
.toast-title.info::after { content: "提示"; font-size: var(--text-md); }
.lr-unchecked { margin: .6em 0; border: 1px dashed #9ca3af; border-radius: 6px;
                padding: .3em .7em; color: #4b5563; }
.lr-unchecked summary { cursor: pointer; font-size: .92em; }
.lr-unchecked li.lr-uncited { text-decoration: none; }
.lr-badge.lr-proviso { background: #fef3c7; color: #92400e; cursor: help; }
.lr-check-text { white-space: pre-wrap; line-height: 1.9; border: 1px solid
                 var(--border-color-primary); border-radius: 8px; padding: .6em .8em; }
.lr-check-summary { margin: .3em 0 .5em; font-weight: 600; }
.lr-check-scope { margin: -.3em 0 .5em; font-size: .9em; color: #666; }
.lr-check-card summary { cursor: pointer; }
"""

# Gradio's own strings in Chinese (issue 15). The page reports zh-CN as the browser's
# language (security.PageLanguage), so Gradio uses its zh-CN translations; these are the
# keys of its English strings that it has no zh-CN translation for and this app shows.
TRANSLATIONS = gr.I18n(**{"zh-CN": {
    "chatbot.copy_message": "复制消息",
    "chatbot.copied_message": "已复制",
    "common.upload": "上传",
    "common.complete": "完成",
    "common.download_all": "全部下载",
    "common.progress": "进度",
    "file.uploading": "正在上传……",
    "status.queue_position": "排队中：第 {position} 位，共 {size} 位",
}})
# aria-labels that Gradio writes in English without a translation key, as screen readers
# should read them; HEAD's script rewrites them in the page, as well as each chat
# message's "bot's message: <raw HTML>" (replaced by 提问：/回答： and the message's text).
# Checked by tests/test_ui_chinese.py with an English browser.
GRADIO_LABELS = {
    "Toggle Sidebar": "展开或收起侧栏",
    "More tabs": "更多标签页",
    "chatbot conversation": "对话",
    "Loading response": "正在生成回答",
    "Click to upload or drop files": "点击上传或拖入文件",
}
# Text of Gradio's progress display, also English without a key (regular expression,
# replacement): the elapsed time "1.1s" or "1.1/3.0s", "processing |", "queue: 1/2 |".
GRADIO_TEXTS = [
    [r"^(\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)?)s$", "$1 秒"],
    [r"^processing \|$", "处理中 |"],
    [r"^queue: ", "排队："],
]

# Citation links point at source cards in the sources panel: open a folded earlier turn,
# scroll the card into view inside the panel, and flash it. Then GRADIO_LABELS and
# GRADIO_TEXTS applied to the page as Gradio renders and updates it.
HEAD = """
<script>
document.addEventListener("click", function (ev) {
  var a = ev.target && ev.target.closest ? ev.target.closest('a[href^="#lr-"]') : null;
  if (!a) return;
  var el = document.getElementById(a.getAttribute("href").slice(1));
  if (!el) return;
  ev.preventDefault();
  for (var d = el.closest("details"); d; d = d.parentElement.closest("details")) d.open = true;
  el.scrollIntoView({behavior: "smooth", block: "start"});
  el.classList.remove("lr-flash"); void el.offsetWidth; el.classList.add("lr-flash");
}, true);
</script>
""" + """<script>
(function () {
  var labels = %LABELS%;
  var roles = {"user's message: ": "提问：", "bot's message: ": "回答："};
  function fix(el) {
    var v = el.getAttribute("aria-label");
    if (!v) return;
    if (labels[v]) { el.setAttribute("aria-label", labels[v]); return; }
    for (var k in roles) if (v.indexOf(k) === 0) {
      el.setAttribute("aria-label", roles[k] + el.textContent.replace(/\\s+/g, " ").trim());
    }
  }
  var texts = %TEXTS%;
  function fixText(node) {
    var v = node.nodeValue, w = v;
    texts.forEach(function (t) { w = w.replace(new RegExp(t[0]), t[1]); });
    if (w !== v) node.nodeValue = w;
  }
  function scan(root) {
    if (root.nodeType === 3) { fixText(root); return; }
    if (root.nodeType !== 1) return;
    fix(root);
    root.querySelectorAll("[aria-label]").forEach(fix);
    var walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) fixText(walk.currentNode);
  }
  new MutationObserver(function (records) {
    records.forEach(function (r) {
      if (r.type === "attributes") fix(r.target);
      else if (r.type === "characterData") fixText(r.target);
      else r.addedNodes.forEach(scan);
    });
  }).observe(document.documentElement, {subtree: true, childList: true, attributes: true,
                                        attributeFilter: ["aria-label"], characterData: true});
  scan(document.body);
})();
</script>
""".replace("%LABELS%", json.dumps(GRADIO_LABELS, ensure_ascii=False)).replace(
    "%TEXTS%", json.dumps(GRADIO_TEXTS, ensure_ascii=False))

PROGRESS = gr.Progress()  # Gradio finds progress trackers as a parameter's default value
FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
         "system-ui", "sans-serif"]


def theme() -> gr.themes.Base:
    """The default theme with local fonts only (the stock theme fetches Google Fonts)."""
    return gr.themes.Default(font=FONTS, font_mono=["Noto Sans Mono CJK SC", "monospace"])


def gradio_progress(progress: gr.Progress) -> ProgressFactory:
    """An index-build progress factory that drives a Gradio progress bar."""

    def make(stage: str, total: int) -> Callable[[int], None]:
        name, unit = STAGES.get(stage, stage), stage_unit(stage)
        done = 0

        def show() -> None:
            if unit and total:
                progress((min(done, total), total), desc=name, unit=unit)
            else:  # the name alone: no count, or none known yet
                progress(None, desc=name)

        def tick(n: int) -> None:
            nonlocal done
            done += n
            show()

        show()

        return tick

    return make


def build_app(settings: Settings, chat: ChatService, kb: KnowledgeBase,
              history: History | None = None) -> gr.Blocks:
    """The Blocks app: a 问答 tab and a 知识库 tab, wired to chat and kb."""
    defaults = ChatOptions.defaults(settings)
    lengths = list(ANSWER_LENGTHS)
    if defaults.max_tokens not in dict(lengths).values():
        lengths.append((f"{defaults.max_tokens} 词元", defaults.max_tokens))

    with gr.Blocks(title="legalrag 法律问答", analytics_enabled=False,
                   delete_cache=(1800, 3600)) as demo:
        session = gr.State(None)  # per browser session; on_ask creates the ChatSession
        plan = gr.State(None)
        gr.HTML(f'<h2 style="margin:0">legalrag · 法律条文问答</h2>'
                f'<div class="lr-notice">{views.NOTICE}</div>')
        history = history or History.for_settings(settings)
        panel = HistoryPanel.build(history)  # the 历史对话 sidebar
        with gr.Tabs():
            with gr.Tab("问答", id="chat"):
                notice = gr.HTML(elem_id="lr-index-notice")
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            elem_id="lr-chat", height=560, label="对话", show_label=False,
                            buttons=["copy"], feedback_options=("Like", "Dislike"),
                            latex_delimiters=[],
                            placeholder="请用中文提问，例如：试用期最长可以约定多久？"
                                        "公司拖欠工资怎么办？《劳动合同法》第四十七条是什么？")
                        with gr.Row():
                            box = gr.Textbox(elem_id="lr-question", label="问题",
                                             show_label=False, placeholder="输入法律问题，回车发送",
                                             lines=1, max_lines=6, scale=6, autofocus=True)
                            ask = gr.Button("提问", variant="primary", scale=1,
                                            elem_id="lr-ask", min_width=80)
                            stop = gr.Button("停止", scale=1, elem_id="lr-stop", min_width=60)
                        with gr.Row():
                            new = gr.Button("新对话", size="sm", elem_id="lr-new")
                        with gr.Accordion("设置", open=False):
                            k = gr.Slider(1, MAX_SOURCES, step=1, value=defaults.k,
                                          label="来源条文数量")
                            mode = gr.Radio(list(MODE_CHOICES), value=defaults.mode,
                                            label="检索方式")
                            old = gr.Checkbox(value=defaults.include_old,
                                              label="包含已失效的旧版本")
                            length = gr.Radio(lengths, value=defaults.max_tokens,
                                              label="回答长度")
                    with gr.Column(scale=2):
                        gr.HTML("<b>来源</b>")
                        sources = gr.HTML(chat.view(ChatSession()).sources,
                                          elem_id="lr-sources")
            with gr.Tab("核查引用", id="check", elem_id="lr-check-tab"):
                gr.Markdown("粘贴任何文字（合同、判决书、其他聊天机器人的回答），逐条核查其中引用"
                            "的法律条文：现行有效、已失效、法库中无此条文或无法识别。不使用模型。")
                pasted = gr.Textbox(elem_id="lr-check-input", label="要核查的文字",
                                    show_label=False, lines=8,
                                    max_lines=30, placeholder="例如：依照《劳动合同法》第四十七条"
                                    "第二款……")
                check_btn = gr.Button("核查", variant="primary", elem_id="lr-check")
                checked_view = gr.HTML(views.render_check("", ()), elem_id="lr-check-result")
            with gr.Tab("知识库", id="kb", elem_id="lr-kb-tab"):
                status = gr.HTML(elem_id="lr-kb-status")
                gr.Markdown("### 上传法规\n.md 或 .txt，UTF-8 编码：第一行是法规名称，然后每条"
                            "以“第一条”“第二条”……开头（也接受国家法律库的 Markdown 格式）。"
                            "文件名可带版本日期，如 `某某条例(2024-01-01).md`。上传后先预览，"
                            "确认后才写入 `corpus/用户上传/` 并更新索引；更新期间问答照常可用。")
                files = gr.File(label="选择法规文件", file_count="multiple",
                                file_types=[".md", ".txt"], type="filepath",
                                elem_id="lr-upload")
                preview = gr.HTML(elem_id="lr-preview")
                add = gr.Button("添加到法库并更新索引", variant="primary", interactive=False,
                                elem_id="lr-add")
                result = gr.HTML(elem_id="lr-kb-result")
                gr.Markdown("### 用户上传的法律\n只能删除用户上传的法律。国家法律库中的法律"
                            "是随软件发布的正式文本，不能在网页上删除；管理员可从 `corpus/` "
                            "删除文件后运行 `legalrag index update`。")
                listing = gr.HTML(elem_id="lr-user-files")
                with gr.Row():
                    removable = gr.Dropdown(label="选择要删除的文件", choices=[],
                                            elem_id="lr-remove-choice", scale=4)
                    remove = gr.Button("删除并更新索引", variant="stop", elem_id="lr-remove",
                                       scale=1, interactive=False)
        timer = gr.Timer(STATUS_SECONDS)
        checker = CitationCheck(kb.live)

        # -- callbacks: unpack, call the library, pack -----------------------------------

        def on_ask(question: str, sess: ChatSession | None, k_: float, mode_: str,
                   old_: bool, length_: int, browser_id: str, request: gr.Request
                   ) -> Iterator[tuple]:
            sess = sess if isinstance(sess, ChatSession) else ChatSession()
            if isinstance(question, str) and not question.strip():
                # an empty 提问 is a slip, not a question: a hint, no bubble, no history
                gr.Info(EMPTY_QUESTION, title=HINT_TITLE)
                yield gr.skip(), gr.skip(), gr.skip(), sess
                return
            options = ChatOptions(int(k_ or defaults.k), mode_ or defaults.mode, bool(old_),
                                  int(length_ or defaults.max_tokens))
            shown = None
            box_ = ""  # the box is emptied once; later views leave what the user types next
            who = owner(request, browser_id)  # saved in the history (history.py)
            for view in history.record(who, sess, chat.respond(sess, question, options)):
                panel = gr.skip() if view.sources == shown else view.sources
                shown = view.sources
                yield box_, view.messages, panel, sess
                box_ = gr.skip()
            if sess.exchanges and sess.exchanges[-1].state == "error":
                # the question comes back to the box: shorten it or ask again, not retype it
                yield question, gr.skip(), gr.skip(), sess

        def on_stop(sess: ChatSession | None) -> Any:
            if not isinstance(sess, ChatSession):
                return gr.skip()
            return chat.stop(sess).messages

        def on_new() -> tuple:
            fresh = ChatSession()
            return fresh, [], chat.view(fresh).sources

        def on_status() -> tuple[str, str]:
            st = kb.status()
            return views.render_chat_notice(st), views.render_status(st)

        def user_files_outputs() -> tuple[str, Any]:
            files_ = kb.user_files()
            choices = [(f"{f.law or '（未编入索引）'} — {f.source}", f.source) for f in files_]
            return views.render_user_files(files_), gr.update(choices=choices, value=None)

        def on_preview(paths: list[str] | None) -> tuple:
            if not paths:
                return "", None, gr.update(interactive=False)
            uploads = [Upload(Path(p).name, Path(p)) for p in paths]
            try:
                new_plan = kb.check_uploads(uploads)
            except LegalRagError as e:
                return views.render_error(f"无法检查上传的文件：{e}"), None, \
                    gr.update(interactive=False)
            return (views.render_plan(new_plan), new_plan,
                    gr.update(interactive=bool(new_plan.accepted)))

        def on_add(current: UploadPlan | None, progress: gr.Progress = PROGRESS) -> tuple:
            if not isinstance(current, UploadPlan) or not current.accepted:
                return (views.render_error("没有可添加的文件：请先上传并通过检查"), current,
                        gr.update(interactive=False), gr.skip(), *user_files_outputs(),
                        *on_status())
            try:
                outcome = kb.add(current, progress=gradio_progress(progress))
            except LegalRagError as e:
                return (views.render_error(f"没有添加任何文件：{e}"), current,
                        gr.update(interactive=True), gr.skip(), *user_files_outputs(),
                        *on_status())
            return (views.render_outcome(outcome), None, gr.update(interactive=False), None,
                    *user_files_outputs(), *on_status())

        def on_remove(source: str | None, progress: gr.Progress = PROGRESS) -> tuple:
            if not source:
                return (views.render_error("请先选择要删除的文件"), *user_files_outputs(),
                        *on_status())
            try:
                outcome = kb.remove(source, progress=gradio_progress(progress))
            except LegalRagError as e:
                return (views.render_error(f"没有删除：{e}"), *user_files_outputs(),
                        *on_status())
            return (views.render_outcome(outcome), *user_files_outputs(), *on_status())

        # -- wiring ------------------------------------------------------------------------

        check_btn.click(checker.run, [pasted], [checked_view], api_name=False,
                        concurrency_limit=4)

        ask_inputs = [box, session, k, mode, old, length, panel.browser]
        ask_outputs = [box, chatbot, sources, session]
        # always_last: a question asked while the previous answer is still ending (just
        # after 停止) waits for it and then runs, instead of being dropped.
        chat_opts: dict[str, Any] = dict(concurrency_limit=CHAT_CONCURRENCY,
                                         concurrency_id="chat", show_progress="hidden",
                                         trigger_mode="always_last")
        submitted = box.submit(on_ask, ask_inputs, ask_outputs, api_name="ask", **chat_opts)
        clicked = ask.click(on_ask, ask_inputs, ask_outputs, api_name=False, **chat_opts)
        # 停止 marks the bubble at once and tells the model to stop (also while it waits in
        # line or reads the prompt); the answer's own event then ends within a fraction of
        # a second, so the box takes the next question. Not Gradio's `cancels`: a cancelled
        # event stayed pending in the page, which then ignored the next 提问.
        stop.click(on_stop, [session], [chatbot], api_name=False, concurrency_limit=None,
                   show_progress="hidden")
        panel.wire(demo, chat, session, chatbot, sources, new, [submitted, clicked])
        new.click(on_new, None, [session, chatbot, sources], api_name=False)
        chatbot.clear(on_new, None, [session, chatbot, sources], api_name=False)

        status_outputs = [notice, status]
        demo.load(on_status, None, status_outputs, api_name=False)
        demo.load(user_files_outputs, None, [listing, removable], api_name=False)
        timer.tick(on_status, None, status_outputs, api_name=False, show_progress="hidden",
                   concurrency_limit=None)

        files.change(on_preview, [files], [preview, plan, add], api_name=False,
                     concurrency_limit=4)
        index_opts: dict[str, Any] = dict(concurrency_limit=1, concurrency_id="index")
        add.click(on_add, [plan], [result, plan, add, files, listing, removable, *status_outputs],
                  api_name="add_files", **index_opts)
        remove.click(on_remove, [removable], [result, listing, removable, *status_outputs],
                     api_name="remove_file", **index_opts)
        removable.change(lambda source: gr.update(interactive=bool(source)), [removable],
                         [remove], api_name=False, show_progress="hidden", queue=False)
    return demo


# ---------------------------------------------------------------- serving


@dataclass
class Server:
    """A running app: its URL, the services behind it and the index thread."""

    demo: gr.Blocks
    url: str
    chat: ChatService
    kb: KnowledgeBase
    index_thread: threading.Thread | None

    def close(self) -> None:
        self.demo.close()


def start(settings: Settings, *, model: ChatModel | None = None,
          progress: ProgressFactory | None = None, update_index: bool = True,
          warm_up: bool = True) -> Server:
    """Bring the index up, then start the server (non-blocking). See the module docstring.

    Raises LegalRagError when no index can be built (e.g. an empty corpus) and ConfigError
    when the port cannot be bound.
    """
    live = LiveRetriever(settings)
    jobs = IndexJobs()
    kb = KnowledgeBase(settings, live, jobs)
    chat = ChatService(settings, live, model)
    thread = None
    state = index_state(settings, live.store) if update_index else "current"
    if state != "current":
        failures: list[BaseException] = []
        since = live.store.current_name() if state == "incompatible" else None
        thread = start_update(settings, jobs, progress, on_error=failures.append)
        if not wait_until_live(live.store, thread, since):
            if failures and isinstance(failures[0], LegalRagError):
                raise failures[0]
            raise LegalRagError(f"the index could not be built: {failures[:1] or jobs.last_error}",
                                fix="see the log above")
    if warm_up:
        threading.Thread(target=_warm_up, args=(chat,), name="legalrag-warm-up",
                         daemon=True).start()
    demo = build_app(settings, chat, kb)
    demo.queue(max_size=QUEUE_MAX, default_concurrency_limit=1)
    auth = (settings.auth_user, settings.auth_password) if settings.auth_user else None
    blocked = [str(Path(p).resolve()) for p in
               (settings.corpus_dir, settings.index_dir, settings.cache_dir)]
    try:
        demo.launch(
            server_name=settings.host, server_port=settings.port, auth=auth,
            auth_message="请登录 legalrag。" if auth else None, prevent_thread_lock=True,
            quiet=True, show_error=False, max_file_size=settings.max_upload_bytes,
            blocked_paths=blocked, footer_links=[], run_history=False, ssr_mode=False,
            pwa=False, mcp_server=False, enable_monitoring=False, theme=theme(), css=CSS,
            head=HEAD, i18n=TRANSLATIONS, app_kwargs={"routes": api.routes(settings, chat),
                                   "middleware": security_middleware()})
    except OSError as e:
        raise ConfigError(f"cannot serve on {settings.host}:{settings.port}: {e}",
                          fix="set another port with --port or LEGALRAG_PORT") from None
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{demo.server_port}/"
    return Server(demo, url, chat, kb, thread)


def _warm_up(chat: ChatService) -> None:
    try:
        chat.warm_up()
    except LegalRagError as e:  # shown again, in Chinese, on the first question
        log.warning("models not preloaded: %s", e)


def configure_logging(settings: Settings, verbose: bool = False) -> None:
    """Warnings on stderr, plus the one-line-per-question log (JSON, no question text
    unless log_questions is on). The assistant's own debug line carries the query, so it
    is kept quiet unless questions may be logged."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    qlog = logging.getLogger("legalrag.questions")
    qlog.setLevel(logging.INFO)
    if not any(getattr(h, "_legalrag", False) for h in qlog.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("question %(message)s"))
        handler._legalrag = True  # type: ignore[attr-defined]
        qlog.addHandler(handler)
    qlog.propagate = False
    if not settings.log_questions:
        logging.getLogger("legalrag.answer.assistant").setLevel(logging.WARNING)
    for noisy in ("httpx", "gradio", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def serve(settings: Settings, *, verbose: bool = False, echo: Callable[[str], None] | None = None
          ) -> int:
    """Start the app, print its URL, and serve until interrupted (the `serve` command)."""
    echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
    configure_logging(settings, verbose)
    if settings.host not in LOOPBACK and not settings.auth_user:
        echo(f"legalrag: 警告：服务监听 {settings.host}，其他机器可以访问，且没有启用登录"
             "（设置 LEGALRAG_AUTH_USER 和 LEGALRAG_AUTH_PASSWORD）")
    state = index_state(settings)
    if state in ("missing", "incompatible"):
        why = "首次启动" if state == "missing" else "现有索引与当前配置（嵌入模型或格式）不符"
        echo(f"legalrag: {why}，正在建立索引：先建关键词索引（约 1 分钟），建好后即可提问；"
             "语义索引随后在后台继续构建（约 8 分钟）。")
    server = start(settings, progress=terminal_progress(labels=STAGES, unit="条"))
    building = server.index_thread is not None and server.index_thread.is_alive()
    echo(f"{chr(10) if building else ''}legalrag: 聊天界面已启动 {server.url}  （Ctrl-C 退出）")
    if settings.auth_user:
        echo(f"legalrag: 已启用登录，用户名 {settings.auth_user}")
    try:
        while server.demo.is_running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        echo("legalrag: 已退出")
    finally:
        server.close()
    return 0
