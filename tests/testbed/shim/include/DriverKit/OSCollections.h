/* Mirrors DriverKit <DriverKit/OSCollections.h>: OSString (OSString.h), OSNumber (OSNumber.h),
 * OSBoolean (OSBoolean.h), OSArray (OSArray.h) and OSDictionary (OSDictionary.h), the parts a
 * SCSI controller dext uses, and OSData (OSData.h) for user-client structure arguments. */
#pragma once
#include <DriverKit/OSObject.h>

class OSString : public OSObject {
public:
    static OSString *withCString(const char *cString);
    const char *getCStringNoCopy() const;
    size_t getLength() const;
    bool isEqualTo(const char *cString) const;
    void free() override;

private:
    char *dksimString = nullptr;
    size_t dksimLength = 0;
};

class OSNumber : public OSObject {
public:
    static OSNumber *withNumber(uint64_t value, size_t numberOfBits);
    uint64_t unsigned64BitValue() const;
    uint32_t unsigned32BitValue() const;

private:
    uint64_t dksimValue = 0;
};

class OSBoolean : public OSObject {
public:
    explicit OSBoolean(bool value) : dksimValue(value) { retain(); /* immortal */ }
    bool isTrue() const;
    bool getValue() const;
    static OSBoolean *withBoolean(bool value);

private:
    bool dksimValue = false;
};
extern OSBoolean *const kOSBooleanTrue;
extern OSBoolean *const kOSBooleanFalse;

class OSArray : public OSObject {
public:
    static OSArray *withCapacity(uint32_t capacity);
    bool setObject(const OSMetaClassBase *anObject);
    OSObject *getObject(uint32_t index) const;
    uint32_t getCount() const;
    void free() override;

private:
    struct DkSimStorage;
    DkSimStorage *dksimStorage = nullptr;
};

class OSDictionary : public OSObject {
public:
    static OSDictionary *withCapacity(uint32_t capacity);
    bool setObject(const char *aKey, const OSMetaClassBase *anObject);
    OSObject *getObject(const char *aKey) const;
    void removeObject(const char *aKey);
    uint32_t getCount() const;
    void free() override;
    /* Test-bed: the i-th key, for the kernel model. */
    const char *DkSimKeyAt(uint32_t index) const;

private:
    struct DkSimStorage;
    DkSimStorage *dksimStorage = nullptr;
};

class OSData : public OSObject {
public:
    static OSData *withBytes(const void *bytes, size_t numBytes);
    static OSData *withCapacity(uint32_t capacity);
    bool appendBytes(const void *bytes, size_t numBytes);
    const void *getBytesNoCopy() const;
    const void *getBytesNoCopy(size_t start, size_t numBytes) const;
    size_t getLength() const;
    void free() override;

private:
    uint8_t *dksimBytes = nullptr;
    size_t dksimLength = 0;
    size_t dksimCapacity = 0;
};
