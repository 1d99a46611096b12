"""The 历史对话 sidebar of the chat: past conversations, reopen, delete. Gradio wiring only;
the store is history.History, the rendering chat.ChatService.view.

Built inside build_app's Blocks (ui.py): ``panel = HistoryPanel.build(history)`` before the
tabs, ``panel.wire(demo, chat, session, chatbot, sources, new, asked)`` after them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from legalrag.errors import LegalRagError
from legalrag.web import views
from legalrag.web.chat import ChatService
from legalrag.web.history import History, export_file, new_browser_id, owner_of
from legalrag.web.session import ChatSession

NOTE = ("对话保存在本服务器上，只有您自己（同一浏览器，或登录后的同一账号）能看到。"
        "清除浏览器数据后，本浏览器以前的对话将无法再打开。")


def owner(request: gr.Request | None, browser_id: object) -> str:
    """Who is asking: the login name, else this browser's id ("" before it has one)."""
    return owner_of(getattr(request, "username", None) if request else None, browser_id)


@dataclass
class HistoryPanel:
    history: History
    browser: gr.BrowserState
    past: gr.Radio
    delete: gr.Button
    delete_all: gr.Button
    confirm: gr.Button
    cancel: gr.Button
    message: gr.HTML
    export_md: gr.Button
    export_docx: gr.Button
    exported: gr.File

    @classmethod
    def build(cls, history: History) -> HistoryPanel:
        browser = gr.BrowserState("", storage_key="legalrag-owner", secret=history.secret())
        with gr.Sidebar(label="历史对话", open=False, elem_id="lr-sidebar"):
            gr.HTML("<b>历史对话</b>")
            past = gr.Radio([], show_label=False, elem_id="lr-history", container=False)
            message = gr.HTML(elem_id="lr-history-message")
            delete = gr.Button("删除当前对话", size="sm", variant="stop",
                               elem_id="lr-history-delete", interactive=False)
            delete_all = gr.Button("删除全部对话", size="sm", elem_id="lr-history-delete-all")
            with gr.Row():
                confirm = gr.Button("确认删除全部", size="sm", variant="stop", visible=False,
                                    elem_id="lr-history-confirm")
                cancel = gr.Button("取消", size="sm", visible=False)
            with gr.Row():
                export_md = gr.Button("导出 Markdown", size="sm", elem_id="lr-export-md")
                export_docx = gr.Button("导出 Word", size="sm", elem_id="lr-export-docx")
            exported = gr.File(label="导出的文件", visible=False, elem_id="lr-export-file",
                               interactive=False)
            gr.HTML(f'<div class="lr-notice">{NOTE}</div>')
        return cls(history, browser, past, delete, delete_all, confirm, cancel, message,
                   export_md, export_docx, exported)

    def choices(self, who: str, current: str | None = None) -> Any:
        listed = self.history.conversations(who) if who else []
        ids = {c.id for c in listed}
        return gr.update(choices=[(c.label, c.id) for c in listed],
                         value=current if current in ids else None)

    def wire(self, demo: gr.Blocks, chat: ChatService, session: gr.State,
             chatbot: gr.Chatbot, sources: gr.HTML, new: gr.Button, asked: list) -> None:
        """Connect the panel: fill it on load and after each answer, reopen on click."""
        history = self.history

        def on_load(browser_id: str, request: gr.Request) -> tuple:
            if not owner(request, browser_id) and not getattr(request, "username", None):
                browser_id = new_browser_id()  # stored in this browser's local storage
            return browser_id, self.choices(owner(request, browser_id))

        def on_asked(browser_id: str, sess: ChatSession | None, request: gr.Request) -> tuple:
            current = sess.id if isinstance(sess, ChatSession) else None
            return self.choices(owner(request, browser_id), current), gr.update(
                interactive=current is not None)

        def on_open(cid: str | None, browser_id: str, request: gr.Request) -> tuple:
            sess = history.load(owner(request, browser_id), cid) if cid else None
            if sess is None:
                return (gr.skip(), gr.skip(), gr.skip(),
                        '<div class="lr-error">这个对话已不存在（可能已在其他标签页删除）。</div>',
                        self.choices(owner(request, browser_id)), gr.skip())
            view = chat.view(sess)
            return sess, view.messages, view.sources, "", gr.skip(), gr.update(interactive=True)

        def fresh() -> tuple:
            sess = ChatSession()
            return sess, [], chat.view(sess).sources

        def on_delete(sess: ChatSession | None, browser_id: str, request: gr.Request) -> tuple:
            who = owner(request, browser_id)
            if isinstance(sess, ChatSession) and who:
                history.delete(who, sess.id)
            return (*fresh(), self.choices(who), gr.update(interactive=False), "")

        def on_delete_all(browser_id: str, request: gr.Request) -> tuple:
            who = owner(request, browser_id)
            n = history.delete_all(who) if who else 0
            return (*fresh(), self.choices(who), gr.update(interactive=False),
                    f'<div class="lr-ok">已删除 {n} 个对话。</div>',
                    gr.update(visible=False), gr.update(visible=False))

        def ask_confirm(show: bool) -> tuple:
            return gr.update(visible=show), gr.update(visible=show)

        opts: dict[str, Any] = dict(api_name=False, show_progress="hidden")
        demo.load(on_load, [self.browser], [self.browser, self.past], **opts)
        for event in asked:
            event.then(on_asked, [self.browser, session], [self.past, self.delete], **opts)
        self.past.input(on_open, [self.past, self.browser],
                        [session, chatbot, sources, self.message, self.past, self.delete],
                        **opts)
        new.click(lambda: (gr.update(value=None), gr.update(interactive=False)), None,
                  [self.past, self.delete], **opts)
        self.delete.click(on_delete, [session, self.browser],
                          [session, chatbot, sources, self.past, self.delete, self.message],
                          **opts)
        self.delete_all.click(lambda: ask_confirm(True), None, [self.confirm, self.cancel],
                              **opts)
        self.cancel.click(lambda: ask_confirm(False), None, [self.confirm, self.cancel], **opts)
        def on_export(sess: ChatSession | None, fmt: str) -> tuple:
            if not isinstance(sess, ChatSession) or not sess.exchanges:
                return (gr.update(value=None, visible=False),
                        '<div class="lr-error">当前对话还没有问题，无可导出。</div>')
            try:
                path = export_file(sess, fmt, Path(tempfile.mkdtemp(prefix="legalrag-export-")))
            except LegalRagError as e:
                return gr.update(value=None, visible=False), views.render_error(f"导出失败：{e}")
            return gr.update(value=str(path), visible=True), ""

        for button, fmt in ((self.export_md, "md"), (self.export_docx, "docx")):
            button.click(lambda s, f=fmt: on_export(s, f), [session],
                         [self.exported, self.message], **opts)
        self.confirm.click(on_delete_all, [self.browser],
                           [session, chatbot, sources, self.past, self.delete, self.message,
                            self.confirm, self.cancel], **opts)
