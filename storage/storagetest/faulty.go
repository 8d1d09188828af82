package storagetest

import (
	"context"
	"time"

	"smp/storage"
)

// Op names a storage operation for Faulty's hook.
type Op string

// The operations Faulty reports.
const (
	OpGet          Op = "get"
	OpPut          Op = "put"
	OpPutIfAbsent  Op = "putifabsent"
	OpDelete       Op = "delete"
	OpStat         Op = "stat"
	OpList         Op = "list"
	OpGetVersioned Op = "getversioned"
	OpSwap         Op = "swap"
)

// Faulty wraps a storage and asks Hook before every operation: a non-nil
// error fails the operation without reaching the storage. It offers none
// of the optional capabilities, so code above runs the generic fallbacks
// (storage.NewWriter buffers and Puts; storage.Open reads ranges by Get).
// Hook must be safe for concurrent use; nil injects nothing.
type Faulty struct {
	storage.Storage
	Hook func(op Op, name string) error
}

func (f *Faulty) fault(op Op, name string) error {
	if f.Hook == nil {
		return nil
	}
	return f.Hook(op, name)
}

func (f *Faulty) Get(ctx context.Context, name string, offset, length int64, buf []byte) ([]byte, error) {
	if err := f.fault(OpGet, name); err != nil {
		return nil, err
	}
	return f.Storage.Get(ctx, name, offset, length, buf)
}

func (f *Faulty) Put(ctx context.Context, name string, data []byte) error {
	if err := f.fault(OpPut, name); err != nil {
		return err
	}
	return f.Storage.Put(ctx, name, data)
}

func (f *Faulty) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	if err := f.fault(OpPutIfAbsent, name); err != nil {
		return err
	}
	return f.Storage.PutIfAbsent(ctx, name, data)
}

func (f *Faulty) Delete(ctx context.Context, name string) error {
	if err := f.fault(OpDelete, name); err != nil {
		return err
	}
	return f.Storage.Delete(ctx, name)
}

func (f *Faulty) Stat(ctx context.Context, name string) (storage.Info, error) {
	if err := f.fault(OpStat, name); err != nil {
		return storage.Info{}, err
	}
	return f.Storage.Stat(ctx, name)
}

func (f *Faulty) List(ctx context.Context, prefix, cursor string, limit int) ([]storage.Info, string, error) {
	if err := f.fault(OpList, prefix); err != nil {
		return nil, "", err
	}
	return f.Storage.List(ctx, prefix, cursor, limit)
}

func (f *Faulty) GetVersioned(ctx context.Context, name string) ([]byte, storage.Version, error) {
	if err := f.fault(OpGetVersioned, name); err != nil {
		return nil, storage.NoVersion, err
	}
	return f.Storage.GetVersioned(ctx, name)
}

func (f *Faulty) Swap(ctx context.Context, name string, old storage.Version, data []byte) (storage.Version, error) {
	if err := f.fault(OpSwap, name); err != nil {
		return storage.NoVersion, err
	}
	return f.Storage.Swap(ctx, name, old, data)
}

func (f *Faulty) Now(ctx context.Context) (time.Time, error) { return f.Storage.Now(ctx) }
