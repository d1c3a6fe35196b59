// virtq_shm: maps a file descriptor (a vhost-user frontend's memfd) with MAP_SHARED and wraps the
// mapping as a SharedArrayBuffer, so virtq's GuestMemory can sit directly on the frontend's
// memory. N-API cannot create a SharedArrayBuffer over external memory, so this file uses the V8
// API and must be rebuilt for each Node major version. The mapping is unmapped when the last
// SharedArrayBuffer referring to its backing store is collected (in any worker).
//   mmapShared(fd, lengthBytes, offsetBytes) -> SharedArrayBuffer   (throws Error with errno)
#include <node.h>
#include <v8.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

namespace {

void Unmap(void* data, size_t length, void* /*deleter_data*/) {
  if (data != nullptr && length > 0) munmap(data, length);
}

void MmapShared(const v8::FunctionCallbackInfo<v8::Value>& info) {
  v8::Isolate* isolate = info.GetIsolate();
  auto ctx = isolate->GetCurrentContext();
  if (info.Length() < 3 || !info[0]->IsNumber() || !info[1]->IsNumber() || !info[2]->IsNumber()) {
    isolate->ThrowException(v8::Exception::TypeError(
        v8::String::NewFromUtf8Literal(isolate, "mmapShared(fd, lengthBytes, offsetBytes) expects three numbers")));
    return;
  }
  int fd = info[0]->Int32Value(ctx).FromMaybe(-1);
  double len = info[1]->NumberValue(ctx).FromMaybe(0);
  double off = info[2]->NumberValue(ctx).FromMaybe(-1);
  if (fd < 0 || !(len > 0) || off < 0 || len > 0x7fffffffffff || off > 0x7fffffffffff) {
    isolate->ThrowException(v8::Exception::RangeError(
        v8::String::NewFromUtf8Literal(isolate, "mmapShared: bad fd, length or offset")));
    return;
  }
  void* p = mmap(nullptr, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
  if (p == MAP_FAILED) {
    char msg[128];
    snprintf(msg, sizeof msg, "mmapShared: mmap failed: %s (errno %d)", strerror(errno), errno);
    isolate->ThrowException(v8::Exception::Error(v8::String::NewFromUtf8(isolate, msg).ToLocalChecked()));
    return;
  }
  std::shared_ptr<v8::BackingStore> store =
      v8::SharedArrayBuffer::NewBackingStore(p, (size_t)len, Unmap, nullptr);
  info.GetReturnValue().Set(v8::SharedArrayBuffer::New(isolate, std::move(store)));
}

}  // namespace

NODE_MODULE_INIT(/* exports, module, context */) {
  v8::Isolate* isolate = context->GetIsolate();
  exports->Set(context, v8::String::NewFromUtf8Literal(isolate, "mmapShared"),
               v8::FunctionTemplate::New(isolate, MmapShared)->GetFunction(context).ToLocalChecked())
      .Check();
}
