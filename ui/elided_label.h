#pragma once

#include <QLabel>
#include <QPainter>
#include <QStyle>

namespace hl::ui {

// A one-line label that never asks for more width than it gets: a text longer than the label is
// cut with "…" (the whole text in its tooltip) instead of pushing its neighbours aside or running
// into them (the status bar's message into the database label; the Live header into its controls).
class ElidedLabel : public QLabel {
 public:
  using QLabel::QLabel;
  QSize minimumSizeHint() const override { return {0, QLabel::minimumSizeHint().height()}; }
  QSize sizeHint() const override { return {0, QLabel::sizeHint().height()}; }

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter p(this);
    const QRect r = contentsRect();
    const QString shown = fontMetrics().elidedText(text(), Qt::ElideRight, r.width());
    setToolTip(shown == text() ? QString() : text());
    style()->drawItemText(&p, r, int(alignment()), palette(), isEnabled(), shown, foregroundRole());
  }
};

}  // namespace hl::ui
