"""The notifier's pure domain: no I/O, no clock, no logging.

- ``sms_text``: diacritics (dấu), the GSM-7 alphabet, segment counting, ``prepare``.
- ``templates``: the notice templates (mẫu tin nhắn), their validation and rendering.
"""
