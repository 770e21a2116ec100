// The one way torch enters Hope Lab code. Qt's `slots` macro breaks torch headers
// (c10::ivalue::Object::slots()), so it is hidden while they are read. Never include this
// from a header that moc reads.
#pragma once
#pragma push_macro("slots")
#undef slots
#include <torch/torch.h>
#pragma pop_macro("slots")
