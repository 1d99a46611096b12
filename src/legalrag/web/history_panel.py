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
from legalrag.web.history import (
    History,
    export_file,
    give_feedback,
    new_browser_id,
    owner_of,
)
from legalrag.web.session import ChatSession, Exchange

# What `current` holds when no conversation is on screen. Not "": Gradio's BrowserState
# leaves local storage as it was when given an empty value, so a reload after 新对话
# reopened the conversation before it.
NO_CONVERSATION = "-"
NOTE = ("对话保存在本服务器上，只有您自己（同一浏览器，或登录后的同一账号）能看到。"
        "清除浏览器数据后，本浏览器以前的对话将无法再打开。")


def owner(request: gr.Request | None, browser_id: object) -> str:
    """Who is asking: the login name, else this browser's id ("" before it has one)."""
    return owner_of(getattr(request, "username", None) if request else None, browser_id)


@dataclass
class HistoryPanel:
    history: History
    browser: gr.BrowserState
    current: gr.BrowserState  # the conversation on screen, reopened after a reload
    past: gr.Radio
    delete: gr.Button
    delete_all: gr.Button
    confirm: gr.Button
    cancel: gr.Button
    message: gr.HTML
    export_md: gr.Button
    export_docx: gr.Button
    exported: gr.File
    right: gr.CheckboxGroup
    wrong: gr.CheckboxGroup
    comment: gr.Textbox
    submit: gr.Button
    turn: gr.Dropdown  # which answer the marks are for: any answered one, by default the last

    @classmethod
    def build(cls, history: History) -> HistoryPanel:
        browser = gr.BrowserState("", storage_key="legalrag-owner", secret=history.secret())
        current = gr.BrowserState("", storage_key="legalrag-current", secret=history.secret())
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
            with gr.Accordion("反馈：回答与条文", open=False, elem_id="lr-feedback"):
                turn = gr.Dropdown([], label="对哪一问的回答（默认最近一问）",
                                   elem_id="lr-feedback-turn", interactive=True)
                right = gr.CheckboxGroup([], label="这条是对的（正确的条文）",
                                         elem_id="lr-feedback-right")
                wrong = gr.CheckboxGroup([], label="不相关的条文", elem_id="lr-feedback-wrong")
                comment = gr.Textbox(label="意见（可选）", lines=2, max_lines=6,
                                     elem_id="lr-feedback-comment",
                                     placeholder="例如：应适用《劳动合同法》第二十条")
                submit = gr.Button("提交反馈", size="sm", elem_id="lr-feedback-submit")
            gr.HTML(f'<div class="lr-notice">{NOTE}</div>')
        return cls(history, browser, current, past, delete, delete_all, confirm, cancel, message,
                   export_md, export_docx, exported, right, wrong, comment, submit, turn)

    def choices(self, who: str, current: str | None = None) -> Any:
        listed = self.history.conversations(who) if who else []
        ids = {c.id for c in listed}
        return gr.update(choices=[(c.label, c.id) for c in listed],
                         value=current if current in ids else None)

    def wire(self, demo: gr.Blocks, chat: ChatService, session: gr.State,
             chatbot: gr.Chatbot, sources: gr.HTML, new: gr.Button, asked: list) -> None:
        """Connect the panel: fill it on load and after each answer, reopen on click."""
        history = self.history

        def on_load(browser_id: str, cid: str, request: gr.Request) -> tuple:
            """Fill the list; a reload (or a new tab) shows the conversation that was on
            screen, as it was saved, rather than an empty chat."""
            if not owner(request, browser_id) and not getattr(request, "username", None):
                browser_id = new_browser_id()  # stored in this browser's local storage
            who = owner(request, browser_id)
            sess = history.load(who, cid) if cid and cid != NO_CONVERSATION and who else None
            if sess is None:
                return browser_id, self.choices(who), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            view = chat.view(sess)
            return (browser_id, self.choices(who, sess.id), sess, view.messages, view.sources,
                    gr.update(interactive=True))

        def on_asked(browser_id: str, sess: ChatSession | None, request: gr.Request) -> tuple:
            current = sess.id if isinstance(sess, ChatSession) else None
            return self.choices(owner(request, browser_id), current), gr.update(
                interactive=current is not None), current or NO_CONVERSATION

        # the file of an export belongs to the conversation it was made from: it goes when
        # another one is opened (a browser session saw the last one offered after 新对话)
        no_file = gr.update(value=None, visible=False)

        def on_open(cid: str | None, browser_id: str, request: gr.Request) -> tuple:
            sess = history.load(owner(request, browser_id), cid) if cid else None
            if sess is None:
                return (gr.skip(), gr.skip(), gr.skip(),
                        '<div class="lr-error">这个对话已不存在（可能已在其他标签页删除）。</div>',
                        self.choices(owner(request, browser_id)), gr.skip(), gr.skip(),
                        gr.skip())
            view = chat.view(sess)
            return (sess, view.messages, view.sources, "", gr.skip(), gr.update(interactive=True),
                    sess.id, no_file)

        def fresh() -> tuple:
            sess = ChatSession()
            return sess, [], chat.view(sess).sources

        def on_delete(sess: ChatSession | None, browser_id: str, request: gr.Request) -> tuple:
            who = owner(request, browser_id)
            if isinstance(sess, ChatSession) and who:
                history.delete(who, sess.id)
            return (*fresh(), self.choices(who), gr.update(interactive=False), "",
                    NO_CONVERSATION, no_file)

        def on_delete_all(browser_id: str, request: gr.Request) -> tuple:
            who = owner(request, browser_id)
            n = history.delete_all(who) if who else 0
            return (*fresh(), self.choices(who), gr.update(interactive=False),
                    f'<div class="lr-ok">已删除 {n} 个对话。</div>',
                    gr.update(visible=False), gr.update(visible=False), NO_CONVERSATION, no_file)

        def ask_confirm(show: bool) -> tuple:
            return gr.update(visible=show), gr.update(visible=show)

        opts: dict[str, Any] = dict(api_name=False, show_progress="hidden")
        demo.load(on_load, [self.browser, self.current],
                  [self.browser, self.past, session, chatbot, sources, self.delete], **opts)
        for event in asked:
            event.then(on_asked, [self.browser, session], [self.past, self.delete, self.current],
                       **opts)
        self.past.input(on_open, [self.past, self.browser],
                        [session, chatbot, sources, self.message, self.past, self.delete,
                         self.current, self.exported], **opts)
        for cleared in (new.click, chatbot.clear):  # 新对话, or the chat's own 🗑
            cleared(lambda: (gr.update(value=None), gr.update(interactive=False),
                             NO_CONVERSATION, no_file), None,
                    [self.past, self.delete, self.current, self.exported], **opts)
        self.delete.click(on_delete, [session, self.browser],
                          [session, chatbot, sources, self.past, self.delete, self.message,
                           self.current, self.exported], **opts)
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

        def answered(sess: object) -> list[Exchange]:
            """The exchanges whose sources can be marked: finished, with sources."""
            if not isinstance(sess, ChatSession):
                return []
            return [e for e in sess.exchanges if e.hits and e.finished]

        def chosen(sess: object, n: object) -> Exchange | None:
            """The exchange numbered n, or the latest one when n names none."""
            done = answered(sess)
            return next((e for e in done if e.n == n), done[-1] if done else None)

        def on_feedback_view(sess: ChatSession | None, browser_id: str, n: object,
                             request: gr.Request) -> tuple:
            ex = chosen(sess, n)
            if ex is None:
                empty = gr.update(choices=[], value=[])
                return gr.update(choices=[], value=None), empty, empty, ""
            turns = [(f"第 {e.n} 问：{e.question.strip()[:24]}", e.n) for e in answered(sess)]
            said = history.feedback(owner(request, browser_id), sess.id).get(ex.n)
            choices = [(f"[{h.rank}] {h.article.citation}", h.rank) for h in ex.hits]
            return (gr.update(choices=turns, value=ex.n),
                    gr.update(choices=choices, value=list(said.right) if said else []),
                    gr.update(choices=choices, value=list(said.irrelevant) if said else []),
                    said.comment if said else "")

        def on_latest_view(sess: ChatSession | None, browser_id: str,
                           request: gr.Request) -> tuple:
            return on_feedback_view(sess, browser_id, None, request)

        def on_submit(sess: ChatSession | None, browser_id: str, n: object, right: list[int],
                      wrong: list[int], text: str, request: gr.Request) -> str:
            ex, who = chosen(sess, n), owner(request, browser_id)
            if ex is None or not who:
                return '<div class="lr-error">还没有可以反馈的回答。</div>'
            both = set(right or ()) & set(wrong or ())
            if both:
                return ('<div class="lr-error">同一条文不能既标“对的”又标“不相关”：'
                        f"{'、'.join(f'[{n}]' for n in sorted(both))}。</div>")
            try:
                give_feedback(history, who, sess.id, ex.n, right=list(right or ()),
                              irrelevant=list(wrong or ()), comment=text or "")
            except ValueError as e:
                return views.render_error(f"反馈没有保存：{e}")
            return f'<div class="lr-ok">已保存对第 {ex.n} 问的反馈，谢谢。</div>'

        def on_like(sess: ChatSession | None, browser_id: str, like: gr.LikeData,
                    request: gr.Request) -> str:
            who = owner(request, browser_id)
            index = like.index[0] if isinstance(like.index, list | tuple) else like.index
            if not isinstance(sess, ChatSession) or not who or not isinstance(index, int):
                return gr.skip()
            n = index // 2 + 1  # a user message and an answer per exchange
            rating = 1 if like.liked is True else -1 if like.liked is False else 0
            try:
                give_feedback(history, who, sess.id, n, rating=rating)
            except ValueError as e:
                return views.render_error(f"评价没有保存：{e}")
            return ""

        feedback_view = [self.turn, self.right, self.wrong, self.comment]
        for event in asked:
            event.then(on_latest_view, [session, self.browser], feedback_view, **opts)
        self.past.input(on_latest_view, [session, self.browser], feedback_view, **opts)
        self.turn.input(on_feedback_view, [session, self.browser, self.turn], feedback_view,
                        **opts)
        self.submit.click(on_submit, [session, self.browser, self.turn, self.right, self.wrong,
                                      self.comment], [self.message], **opts)
        chatbot.like(on_like, [session, self.browser], [self.message], **opts)

        for button, fmt in ((self.export_md, "md"), (self.export_docx, "docx")):
            button.click(lambda s, f=fmt: on_export(s, f), [session],
                         [self.exported, self.message], **opts)
        self.confirm.click(on_delete_all, [self.browser],
                           [session, chatbot, sources, self.past, self.delete, self.message,
                            self.confirm, self.cancel, self.current, self.exported], **opts)
