"""An evaluation corpus of mail replies: for each language, the owner's text (several
lengths, with dates, colons, names and '>' that are not quotes) under each client's
quote header, separator, header block, signature and list footer, as the client lays
them out. Each case is (language, shape, body, expected reply). Used by
tests/test_replies.py and bench/email_reply.py.

The headers are written out per language here (not read from the package's data), so
the corpus checks the data as much as the code; `unknown` shapes use labels and verbs
that are in no data set, which only the shape rules can catch.
"""

from __future__ import annotations

import itertools

LANGUAGES = ("en", "es", "pt", "fr", "de", "it", "nl", "da", "no", "sv", "fi", "pl", "cs", "sk", "hu",
             "ro", "ru", "uk", "tr", "el", "ja", "zh", "ko", "ar", "he")  # fmt: skip

NAME, ADDRESS = "Jan Kowalski", "jan.kowalski@example.com"

# (short reply, a written-out date with time, Gmail's header, Apple Mail's header,
#  Outlook labels From/Sent/To/Subject, "original message", mobile signature, forward line)
L = {
    "en": ("Thanks, that works for me.", "Mon, Feb 5, 2024 at 10:00 AM",
           "On {d} {n} <{a}> wrote:", "On 5 Feb 2024, at 10:00, {n} <{a}> wrote:",
           ("From", "Sent", "To", "Subject"), "Original Message", "Sent from my iPhone"),
    "es": ("Gracias, me viene bien.", "lun, 5 feb 2024 a las 10:00",
           "El {d}, {n} (<{a}>) escribió:", "El 5 feb 2024, a las 10:00, {n} <{a}> escribió:",
           ("De", "Enviado el", "Para", "Asunto"), "Mensaje original", "Enviado desde mi iPhone"),
    "pt": ("Obrigado, para mim funciona.", "seg., 5 de fev. de 2024 às 10:00",
           "Em {d}, {n} <{a}> escreveu:", "Em 5 de fev. de 2024, à(s) 10:00, {n} <{a}> escreveu:",
           ("De", "Enviado", "Para", "Assunto"), "Mensagem original", "Enviado do meu iPhone"),
    "fr": ("Merci, ça me va.", "lun. 5 févr. 2024 à 10:00",
           "Le {d}, {n} <{a}> a écrit :", "Le 5 févr. 2024 à 10:00, {n} <{a}> a écrit :",
           ("De", "Envoyé", "À", "Objet"), "Message d'origine", "Envoyé de mon iPhone"),
    "de": ("Danke, passt mir.", "Mo., 5. Feb. 2024 um 10:00 Uhr",
           "Am {d} schrieb {n} <{a}>:", "Am 05.02.2024 um 10:00 schrieb {n} <{a}>:",
           ("Von", "Gesendet", "An", "Betreff"), "Ursprüngliche Nachricht", "Von meinem iPhone gesendet"),
    "it": ("Grazie, per me va bene.", "lun 5 feb 2024 alle ore 10:00",
           "Il giorno {d} {n} <{a}> ha scritto:", "Il giorno 5 feb 2024, alle ore 10:00, {n} <{a}> ha scritto:",
           ("Da", "Inviato", "A", "Oggetto"), "Messaggio originale", "Inviato da iPhone"),
    "nl": ("Bedankt, dat past.", "ma 5 feb 2024 om 10:00",
           "Op {d} schreef {n} <{a}>:", "Op 5 feb. 2024 om 10:00 heeft {n} <{a}> het volgende geschreven:",
           ("Van", "Verzonden", "Aan", "Onderwerp"), "Oorspronkelijk bericht", "Verzonden vanaf mijn iPhone"),
    "da": ("Tak, det passer mig.", "man. 5. feb. 2024 kl. 10.00",
           "Den {d} skrev {n} <{a}>:", "Den 5. feb. 2024 kl. 10.00 skrev {n} <{a}>:",
           ("Fra", "Sendt", "Til", "Emne"), "Oprindelig meddelelse", "Sendt fra min iPhone"),
    "no": ("Takk, det passer fint.", "man. 5. feb. 2024 kl. 10:00",
           "{d} skrev {n} <{a}>:", "5. feb. 2024 kl. 10:00 skrev {n} <{a}>:",
           ("Fra", "Sendt", "Til", "Emne"), "Opprinnelig melding", "Sendt fra min iPhone"),
    "sv": ("Tack, det passar bra.", "mån 5 feb. 2024 kl. 10:00",
           "Den {d} skrev {n} <{a}>:", "5 feb. 2024 kl. 10:00 skrev {n} <{a}>:",
           ("Från", "Skickat", "Till", "Ämne"), "Ursprungligt meddelande", "Skickat från min iPhone"),
    "fi": ("Kiitos, sopii minulle.", "ma 5.2.2024 klo 10.00",
           "{n} <{a}> kirjoitti {d}:", "5.2.2024 kello 10.00 {n} <{a}> kirjoitti:",
           ("Lähettäjä", "Lähetetty", "Vastaanottaja", "Aihe"), "Alkuperäinen viesti", "Lähetetty iPhonesta"),
    "pl": ("Dzięki, pasuje mi.", "pon., 5 lut 2024 o 10:00",
           "{d} {n} <{a}> napisał(a):", "Wiadomość napisana przez {n} <{a}> w dniu 05.02.2024, o godz. 10:00:",
           ("Od", "Wysłano", "Do", "Temat"), "Wiadomość oryginalna", "Wysłane z iPhone'a"),
    "cs": ("Díky, to mi vyhovuje.", "po 5. 2. 2024 v 10:00",
           "{d} odesílatel {n} <{a}> napsal:", "5. 2. 2024 v 10:00, {n} <{a}> napsal(a):",
           ("Od", "Odesláno", "Komu", "Předmět"), "Původní zpráva", "Odesláno z iPhonu"),
    "sk": ("Vďaka, vyhovuje mi to.", "po 5. 2. 2024 o 10:00",
           "{d} {n} <{a}> napísal(a):", "5. 2. 2024 o 10:00, {n} <{a}> napísal(a):",
           ("Od", "Odoslané", "Komu", "Predmet"), "Pôvodná správa", "Odoslané z iPhonu"),
    "hu": ("Köszi, nekem jó.", "2024. febr. 5., H, 10:00",
           "{n} <{a}> ezt írta (időpont: {d}):", "2024. febr. 5. dátummal, 10:00 időpontban {n} <{a}> írta:",
           ("Feladó", "Elküldve", "Címzett", "Tárgy"), "Eredeti üzenet", "iPhone-ról küldve"),
    "ro": ("Mersi, îmi convine.", "lun., 5 feb. 2024 la 10:00",
           "În {d}, {n} <{a}> a scris:", "Pe 5 feb. 2024, la 10:00, {n} <{a}> a scris:",
           ("De la", "Trimis", "Către", "Subiect"), "Mesaj original", "Trimis de pe iPhone-ul meu"),
    "ru": ("Спасибо, мне подходит.", "пн, 5 февр. 2024 г. в 10:00",
           "{d}, {n} <{a}>:", "5 февр. 2024 г., в 10:00, {n} <{a}> написал(а):",
           ("От", "Отправлено", "Кому", "Тема"), "Исходное сообщение", "Отправлено с iPhone"),
    "uk": ("Дякую, мені підходить.", "пн, 5 лют. 2024 р. о 10:00",
           "{d} {n} <{a}> пише:", "5 лют. 2024 р. о 10:00 {n} <{a}> написав(-ла):",
           ("Від", "Надіслано", "Кому", "Тема"), "Оригінальне повідомлення", "Надіслано з iPhone"),
    "tr": ("Teşekkürler, bana uyar.", "5 Şub 2024 Pzt 10:00",
           "{n} <{a}>, {d} tarihinde şunu yazdı:", "5 Şub 2024 tarihinde 10:00 saatinde, {n} <{a}> şunları yazdı:",
           ("Kimden", "Gönderildi", "Kime", "Konu"), "Özgün İleti", "iPhone'umdan gönderildi"),
    "el": ("Ευχαριστώ, μου ταιριάζει.", "Δευ 5 Φεβ 2024 στις 10:00",
           "Στις {d}, ο/η {n} <{a}> έγραψε:", "Στις 5 Φεβ 2024, στις 10:00, ο χρήστης {n} <{a}> έγραψε:",
           ("Από", "Στάλθηκε", "Προς", "Θέμα"), "Αρχικό μήνυμα", "Στάλθηκε από το iPhone μου"),
    "ja": ("ありがとうございます。大丈夫です。", "2024年2月5日(月) 10:00",
           "{d} {n} <{a}>:", "2024/02/05 10:00、{n} <{a}>のメール:",
           ("差出人", "送信日時", "宛先", "件名"), "元のメッセージ", "iPhoneから送信"),
    "zh": ("谢谢，我没问题。", "2024年2月5日周一 10:00",
           "{n} <{a}> 于{d}写道：", "2024年2月5日，10:00，{n} <{a}> 写道：",
           ("发件人", "发送时间", "收件人", "主题"), "原始邮件", "发自我的iPhone"),
    "ko": ("감사합니다, 좋습니다.", "2024년 2월 5일 (월) 오전 10:00",
           "{d}, {n} <{a}>님이 작성:", "2024. 2. 5., 10:00, {n} <{a}> 작성:",
           ("보낸 사람", "보낸 날짜", "받는 사람", "제목"), "원본 메시지", "iPhone에서 보냄"),
    "ar": ("شكرًا، هذا يناسبني.", "الاثنين، 5 فبراير 2024 في 10:00 ص",
           "في {d}، كتب {n} <{a}>:", "في 5 فبراير 2024، الساعة 10:00، كتب {n} <{a}>:",
           ("من", "تم الإرسال", "إلى", "الموضوع"), "الرسالة الأصلية", "أُرسلت من iPhone"),
    "he": ("תודה, זה מתאים לי.", "יום ב׳, 5 בפבר׳ 2024 ב-10:00",
           "בתאריך {d}, מאת {n} <{a}>:", "ב-5 בפבר׳ 2024, בשעה 10:00, {n} <{a}> כתב/ה:",
           ("מאת", "נשלח", "אל", "נושא"), "הודעה מקורית", "נשלח מה-iPhone שלי"),
}

QUOTED = "Hi,\n\nCan we meet on Thursday at 14:00?\n\nBest,\nJan"


def owner_texts(language: str) -> list[str]:
    """The owner's replies: short, with a date and a colon, with a name and '>' that is no
    quote, with lines shaped like labels, and long."""
    short = L[language][0]
    return [
        short,
        f"{short}\n\nThe meeting is on 12.03.2024 at 14:00: room 4.",
        f"{short}\nJan said 2 > 1, and >_< was the face he made.\nSee you at 10:30.",
        f"{short}\n\nAgenda for 05/03/2024:\n- budget: 3 items\n- Note: bring the slides",
        f"{short}\n\nDate: Friday 8 March\nTime: 10:00\nPlace: the office\n\nMaria Nowak",
        "\n\n".join([short] + [f"Point {i}: we agreed on {i} things at 1{i}:00 with Maria." for i in range(1, 6)]),
    ]


def _quoted(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.split("\n"))


def _wrap(header: str, width: int = 76) -> str:
    """The header wrapped as Gmail's plain-text part does, at the last space before `width`."""
    if len(header) <= width:
        return header
    cut = header.rfind(" ", 0, width)
    return header[:cut] + "\n" + header[cut + 1 :]


def client_shapes(language: str) -> dict[str, str]:
    """What each client puts under the reply, `{reply}` standing for the owner's text."""
    short, date, gmail, apple, labels, original, mobile = L[language]
    gmail_header = gmail.format(d=date, n=NAME, a=ADDRESS)
    apple_header = apple.format(n=NAME, a=ADDRESS)
    f, s, t, subj = labels
    outlook = (
        f"{f}: {NAME} <{ADDRESS}>\n{s}: {date}\n{t}: Sam Rivera <sam@example.com>\n{subj}: Plan\n\n{QUOTED}"
    )
    return {
        "gmail": f"{{reply}}\n\n{gmail_header}\n\n{_quoted(QUOTED)}\n",
        "gmail_wrapped": f"{{reply}}\n\n{_wrap(gmail_header, 60)}\n\n{_quoted(QUOTED)}\n",
        "apple_mail": f"{{reply}}\n\n{mobile}\n\n{apple_header}\n\n{_quoted(QUOTED)}",
        "apple_unquoted": f"{{reply}}\n\n{apple_header}\n{QUOTED}",
        "outlook": f"{{reply}}\n\n________________________________\n{outlook}",
        "outlook_plain": f"{{reply}}\n\n{outlook}",
        "original_message": f"{{reply}}\n\n-----{original}-----\n{outlook}",
        "thunderbird": f"{{reply}}\n\n-------- {original} --------\n{f}: {NAME} <{ADDRESS}>\n\n{QUOTED}",
        "mobile_signature": f"{{reply}}\n\n{mobile}",
        "outlook_mobile": "{reply}\n\nGet Outlook for iOS<https://aka.ms/o0ukef>",
        "date_address": f"{{reply}}\n\n05.02.2024 10:00, \"{NAME}\" <{ADDRESS}>:\n\n{_quoted(QUOTED)}",
        "unknown_language_header": f"{{reply}}\n\nmán. 5. feb. 2024 kl. 10:00 skrifaði {NAME} <{ADDRESS}>:\n\n{_quoted(QUOTED)}",
        "unknown_labels": (
            f"{{reply}}\n\nFrá: {NAME} <{ADDRESS}>\nSent: 5. febrúar 2024 10:00\nTil: sam@example.com\n"
            f"Efni: Plan\n\n{QUOTED}"
        ),
        "mailing_list": (
            "{reply}\n\n_______________________________________________\nteam mailing list\n"
            "team@lists.example.org\nhttps://lists.example.org/mailman/listinfo/team"
        ),
        "interleaved": f"{_quoted('Can we meet on Thursday?')}\n\n{{reply}}\n\n{gmail_header}\n{_quoted(QUOTED)}",
    }


def cases() -> list[tuple[str, str, str, str]]:
    """(language, shape, body, expected reply) for every language, shape and owner text,
    plus each owner text alone (`none`: nothing may be cut)."""
    out = []
    for language in LANGUAGES:
        texts = owner_texts(language)
        shapes = client_shapes(language)
        for text in texts:
            out.append((language, "none", text, text))
        # Every shape with every text would be 25 x 15 x 6; rotate the texts instead.
        for (shape, layout), text in zip(shapes.items(), itertools.cycle(texts)):
            out.append((language, shape, layout.replace("{reply}", text), text))
        for text in texts[1:4]:
            out.append((language, "gmail", shapes["gmail"].replace("{reply}", text), text))
    return out
