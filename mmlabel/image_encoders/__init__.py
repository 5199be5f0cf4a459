"""image_encoders"""
