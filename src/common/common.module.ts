import { Global, Module } from '@nestjs/common';
import { Names } from './names';
import { ValueCodec } from './value-codec';

/** The request-handling helpers every module shares: name rules and value encodings. */
@Global()
@Module({
  providers: [Names, ValueCodec],
  exports: [Names, ValueCodec],
})
export class CommonModule {}
